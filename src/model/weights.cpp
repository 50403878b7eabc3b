#include "model/weights.h"

#include <string>
#include <utility>

namespace spt {

WeightTable add_model_tensors(const ModelConfig& config, ParamTable& table) {
  const int64_t C = config.width, F = config.ff_width(), QKV = config.qkv_width(), V = kVocab;
  // name.weight of `shape`, then name.bias of its first dimension (never decayed).
  auto affine = [&](const std::string& name, std::vector<int64_t> shape, bool decay) {
    const int64_t out = shape[0];
    const int64_t weight = table.add(name + ".weight", std::move(shape), decay);
    return Affine{weight, table.add(name + ".bias", {out}, false)};
  };
  WeightTable w;
  w.tok_emb = table.add("tok_emb.weight", {V, C}, false);
  for (size_t k = 0; k < config.pos_sizes.size(); ++k)
    w.pos_emb.push_back(table.add("pos_emb." + std::to_string(k) + ".weight", {config.pos_sizes[k], C}, false));
  for (int r = 0; r < config.layers; ++r) {
    const std::string p = "blocks." + std::to_string(r) + ".";
    LayerWeights& layer = w.layers.emplace_back();
    layer.ln1 = affine(p + "ln1", {C}, false);
    layer.qkv = affine(p + "attn.qkv", {QKV, C}, true);
    layer.proj = affine(p + "attn.proj", {C, C}, true);
    layer.ln2 = affine(p + "ln2", {C}, false);
    layer.fc1 = affine(p + "mlp.fc1", {F, C}, true);
    layer.fc2 = affine(p + "mlp.fc2", {C, F}, true);
  }
  w.ln_f = affine("ln_f", {C}, false);
  w.head = affine("head", {V, C}, true);
  return w;
}

}  // namespace spt
