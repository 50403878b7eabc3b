// The weight table: where every weight of the model lies in the flat parameter buffer,
// as float offsets recorded once, while the model's ParamTable is built. The same offsets
// address the fp32 weights and their gradients on the host and on the device, and the
// device's copy in the activation type, so every backend reads the weights through this
// one table.
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

// The one list of the model's tensors (docs/MODEL.md): adds each, with its name, shape and
// weight decay, to `table` in checkpoint order and returns where they lie. The config must
// be valid (validate(ModelConfig)).
WeightTable add_model_tensors(const ModelConfig& config, ParamTable& table);

}  // namespace spt
