// Where every named weight of the model lies in the flat parameter buffer (float offsets
// from the ParamTable), looked up once by the GPU model and the GPU sampler.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace spt::cuda {

struct LayerOffsets {  // float offsets of one layer's parameters
  int64_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

struct WeightOffsets {
  std::vector<LayerOffsets> layers;  // (L)
  int64_t tok_emb = 0, lnf_w = 0, lnf_b = 0, head_w = 0, head_b = 0;
  std::vector<int64_t> pos_emb;  // (pos_sizes)
};

inline WeightOffsets weight_offsets(const ParamTable& table, const ModelConfig& c) {
  auto offset = [&](const std::string& name) { return table.find(name).offset; };
  WeightOffsets o;
  o.tok_emb = offset("tok_emb.weight");
  for (size_t k = 0; k < c.pos_sizes.size(); ++k) o.pos_emb.push_back(offset("pos_emb." + std::to_string(k) + ".weight"));
  for (int r = 0; r < c.layers; ++r) {
    const std::string p = "blocks." + std::to_string(r) + ".";
    o.layers.push_back({offset(p + "ln1.weight"), offset(p + "ln1.bias"), offset(p + "attn.qkv.weight"),
                        offset(p + "attn.qkv.bias"), offset(p + "attn.proj.weight"), offset(p + "attn.proj.bias"),
                        offset(p + "ln2.weight"), offset(p + "ln2.bias"), offset(p + "mlp.fc1.weight"),
                        offset(p + "mlp.fc1.bias"), offset(p + "mlp.fc2.weight"), offset(p + "mlp.fc2.bias")});
  }
  o.lnf_w = offset("ln_f.weight");
  o.lnf_b = offset("ln_f.bias");
  o.head_w = offset("head.weight");
  o.head_b = offset("head.bias");
  return o;
}

}  // namespace spt::cuda
