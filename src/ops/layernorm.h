// Layer normalization over the last dimension (eps 1e-5, biased variance):
//   y = (x - mean) * rstd * weight + bias,  rstd = 1 / sqrt(var + eps).
// Statistics are computed in fp64 and stored in fp32 for the backward pass.
#pragma once

#include "ops/dtype.h"

#include <cstdint>

namespace spt {

inline constexpr double kLayerNormEps = 1e-5;

namespace cpu {

// x, y: (N, C); weight, bias: (C); mean, rstd: (N) written.
void layernorm_forward(const float* x, const float* weight, const float* bias, int64_t N, int C, float* y, float* mean,
                       float* rstd);

// Given dy (N, C) and the forward's x, mean, rstd:
//   dx (N, C) overwritten, or added when accumulate_dx;
//   dweight, dbias (C) += (fp64 sums in a fixed order, independent of the thread count).
void layernorm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* dy,
                        int64_t N, int C, float* dx, bool accumulate_dx, float* dweight, float* dbias);

}  // namespace cpu
// CUDA backend (built with SPT_HAVE_CUDA): device pointers, asynchronous on `stream`.
// The input x is the fp32 residual stream; the output y has the activation type.
namespace cuda {
// x: (N, C) fp32; weight, bias: (C) fp32; y: (N, C) dtype; mean, rstd: (N) fp32 written.
void layernorm_forward(const float* x, const float* weight, const float* bias, int64_t N, int C, DType dtype, void* y,
                       float* mean, float* rstd, CUstream_st* stream = nullptr);
// dy: (N, C) dtype; dx: (N, C) fp32 overwritten, or added when accumulate_dx;
// dweight, dbias: (C) fp32, added; reduced in a fixed order (no atomics): deterministic.
void layernorm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const void* dy,
                        int64_t N, int C, DType dtype, float* dx, bool accumulate_dx, float* dweight, float* dbias,
                        CUstream_st* stream = nullptr);
}  // namespace cuda

}  // namespace spt
