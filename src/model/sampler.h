// Autoregressive sampling with a key/value cache: position t runs one row per sequence
// through every layer, appends its keys and values to the cache and attends only to
// its allowed keys, so each new token costs its attended pairs plus the matrix-vector
// products of the weights.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"

namespace spt {

struct SampleOptions {
  int count = 1;                        // sequences sampled together
  int64_t length = 0;                   // tokens per sequence (0: the model context)
  float temperature = 1.0f;             // 0: always the most likely token
  uint64_t seed = 1;
  std::vector<std::vector<uint8_t>> prefixes;  // optional, per sequence (or one for all): kept as given
};

// Returns `count` sequences of `length` tokens.
std::vector<std::vector<uint8_t>> sample(Model& model, const SampleOptions& options);

}  // namespace spt
