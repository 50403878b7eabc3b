// Inverted dropout with counter-based masks (docs/MODEL.md, Dropout): element e of a
// stream with key `key` is kept when uniform01(key, e) >= p and then scaled by 1/(1-p).
// The mask is a pure function of (key, e), so the backward pass and recomputation
// regenerate it instead of storing it, and the same mask applies to the gradient.
#pragma once

#include <cstdint>

namespace spt {

// The key of the mask of branch `branch` (0 attention, 1 feed-forward) of layer `layer`
// in micro-step `micro_step` of a run with seed `seed`.
uint64_t dropout_key(uint64_t seed, int64_t micro_step, int layer, int branch);

namespace cpu {

// x (n) *= mask(key, e) / (1 - p), in place. The same call applies the mask to a
// gradient. p in [0, 1).
void dropout_apply(uint64_t key, float p, int64_t n, float* x);

// out (n) = residual (n) + x (n) * mask(key, e) / (1 - p); with p == 0 no mask is drawn.
// out may alias residual.
void dropout_add(uint64_t key, float p, const float* x, const float* residual, int64_t n, float* out);

}  // namespace cpu
// The CUDA backend declares the same entry points in namespace spt::cuda.

}  // namespace spt
