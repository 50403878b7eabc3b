// Inverted dropout with counter-based masks (docs/MODEL.md, Dropout): element e of a
// stream with key `key` is kept when uniform01(key, e) >= p and then scaled by 1/(1-p).
// The mask is a pure function of (key, e), so the backward pass and recomputation
// regenerate it instead of storing it, and the same mask applies to the gradient.
#pragma once

#include "ops/dtype.h"

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
// CUDA backend: the same masks (the device evaluates the same Philox stream), device
// pointers, asynchronous on `stream`.
namespace cuda {
// x (n) of dtype *= mask(key, e) / (1 - p), in place (also for gradients).
void dropout_apply(uint64_t key, float p, int64_t n, DType dtype, void* x, CUstream_st* stream = nullptr);
// out (n) of dtype = x (n) fp32 rounded to dtype, then masked as dropout_apply would: the
// same bits as convert_from_f32 followed by dropout_apply, in one pass.
void dropout_convert(uint64_t key, float p, const float* x, int64_t n, DType dtype, void* out,
                     CUstream_st* stream = nullptr);
// out (n) fp32 = residual (n) fp32 + x (n) dtype * mask(key, e) / (1 - p); out may alias residual.
void dropout_add(uint64_t key, float p, const void* x, DType dtype, const float* residual, int64_t n, float* out,
                 CUstream_st* stream = nullptr);
}  // namespace cuda

}  // namespace spt
