// The weight table: where every weight of the model lies in the flat parameter buffer,
// as float offsets looked up by name from the ParamTable once, when a model or decoder is
// built. The same offsets address the fp32 weights and their gradients on the host and
// on the device, and the device's copy in the activation type, so every backend reads the
// weights through this one table.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace spt {

// A weight and its bias: a LayerNorm's scale and shift (C) each, or a linear layer's
// weight (out, in) and bias (out).
struct Affine {
  int64_t weight = 0;
  int64_t bias = 0;
};

// One residual block's parameters (blocks.<r>.*).
struct LayerWeights {
  Affine ln1;   // (C), (C)
  Affine qkv;   // (2*H*Dk + C, C), (2*H*Dk + C)
  Affine proj;  // (C, C), (C)
  Affine ln2;   // (C), (C)
  Affine fc1;   // (F, C), (F)
  Affine fc2;   // (C, F), (C)
};

struct WeightTable {
  int64_t tok_emb = 0;               // (V, C)
  std::vector<int64_t> pos_emb;      // (pos_sizes): table k is (pos_sizes[k], C)
  std::vector<LayerWeights> layers;  // (L)
  Affine ln_f;                       // (C), (C)
  Affine head;                       // (V, C), (V)
};

// The offsets of the tensors docs/MODEL.md names, for a table built by model_param_table.
WeightTable weight_table(const ParamTable& table, const ModelConfig& config);

}  // namespace spt
