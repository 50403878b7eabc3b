// Whole-buffer ops of the CUDA training step: AdamW on the fp32 master weights (also
// refreshing their copy in the activation type), the weight average, the global gradient norm, scaling, the
// finiteness check of fp16 loss scaling, and type conversion. Same semantics as
// src/train/optimizer.h on the CPU. Device pointers, asynchronous on `stream`, except
// where a function returns a value (it synchronizes `stream`).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/dtype.h"

namespace spt::cuda {

// A run of the flat parameter buffer and whether weight decay applies to it.
struct ParamSegment {
  int64_t offset = 0;
  int64_t size = 0;
  bool decay = false;
};

struct AdamWParams {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
  int64_t step = 0;     // after increment: 1 for the first step (bias correction)
  float grad_scale = 1;  // gradients are multiplied by this first (unscaling and clipping)
};

// For each segment: w -= lr * wd * w (decay segments only); m, v updated from g * grad_scale;
// w -= lr * mhat / (sqrt(vhat) + eps). weights, grads, m, v: (n) fp32. When compute_copy is
// not null it receives w converted to compute_dtype (same offsets). The segment table is
// uploaded by the caller: segments is a device array of `count` entries sorted by offset,
// not overlapping; elements outside every segment are updated without decay.
void adamw_step(const ParamSegment* segments, int count, int64_t n, const AdamWParams& params, float* weights,
                const float* grads, float* m, float* v, DType compute_dtype, void* compute_copy,
                CUstream_st* stream = nullptr);

// The weight average after an optimizer step: ema (n) = fma(decay, ema, (1 - decay) * weights)
// in fp64 with every operation rounded as written, stored in fp32: the same bits as the
// CPU's ema_update (src/train/optimizer.h) for the same weights. weights, ema: (n) fp32.
void ema_update(const float* weights, float* ema, int64_t n, double decay, CUstream_st* stream = nullptr);

// Sum of squares of x (n) fp32 in fp64, reduced in a fixed order (the same bits for the
// same input); non-finite elements make the result non-finite. Synchronizes `stream`.
double sum_of_squares(const float* x, int64_t n, CUstream_st* stream = nullptr);

// x (n) fp32 *= factor.
void scale(float* x, int64_t n, float factor, CUstream_st* stream = nullptr);

// dst (n) of dst_dtype = src (n) fp32 (round to nearest even).
void convert_from_f32(const float* src, int64_t n, DType dst_dtype, void* dst, CUstream_st* stream = nullptr);
// dst (n) fp32 = src (n) of src_dtype.
void convert_to_f32(const void* src, int64_t n, DType src_dtype, float* dst, CUstream_st* stream = nullptr);

}  // namespace spt::cuda
