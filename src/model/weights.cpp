#include "model/weights.h"

#include <string>

namespace spt {

WeightTable weight_table(const ParamTable& table, const ModelConfig& config) {
  auto at = [&](const std::string& name) { return table.find(name).offset; };
  auto affine = [&](const std::string& prefix) { return Affine{at(prefix + ".weight"), at(prefix + ".bias")}; };
  WeightTable w;
  w.tok_emb = at("tok_emb.weight");
  for (size_t k = 0; k < config.pos_sizes.size(); ++k)
    w.pos_emb.push_back(at("pos_emb." + std::to_string(k) + ".weight"));
  for (int r = 0; r < config.layers; ++r) {
    const std::string p = "blocks." + std::to_string(r) + ".";
    w.layers.push_back({affine(p + "ln1"), affine(p + "attn.qkv"), affine(p + "attn.proj"), affine(p + "ln2"),
                        affine(p + "mlp.fc1"), affine(p + "mlp.fc2")});
  }
  w.ln_f = affine("ln_f");
  w.head = affine("head");
  return w;
}

}  // namespace spt
