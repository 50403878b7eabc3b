// What the sampler tests share: a tiny model of every pattern and weights that are all random.
#pragma once

#include <cstdint>
#include <string>

#include "core/rng.h"
#include "model/model.h"

namespace spt::testing_support {

// 2 layers, width 32, 4 heads, T 40 laid out as 5 rows of the stride 8.
inline ModelConfig tiny_sampler_model(const std::string& pattern, const std::string& mode = "merged") {
  ModelConfig c;
  c.layers = 2;
  c.width = 32;
  c.heads = 4;
  c.ctx = 40;
  c.pattern = pattern;
  c.mode = mode;
  c.stride = 8;
  c.summary = 2;
  c.summary_blocks = 2;
  c.pos_sizes = {5, 8};
  return c;
}

// Every weight random, so no part of the network is trivially zero.
inline void randomize_weights(Model& model, uint64_t seed) {
  for (size_t e = 0; e < model.weights().size(); ++e) model.weights()[e] = 0.3f * normal01(seed, e);
}

}  // namespace spt::testing_support
