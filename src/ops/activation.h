// The feed-forward activation: gelu(x) = x * sigmoid(1.702 x) (the paper's
// approximation of GELU).
// The CUDA backend adds the fc1 bias in the cuBLASLt epilogue but applies this activation
// as a separate pass: cuBLASLt's GELU epilogue is the tanh approximation, a different
// function from the one the CPU oracle, the reference model and the checkpoints define.
#pragma once

#include "ops/dtype.h"

#include <cstdint>

namespace spt {

inline constexpr float kGeluSlope = 1.702f;

namespace cpu {

// y (n) = gelu(x (n)); y may alias x.
void gelu_forward(const float* x, int64_t n, float* y);

// dx (n) = dy (n) * gelu'(x (n)); dx may alias dy.
void gelu_backward(const float* x, const float* dy, int64_t n, float* dx);

}  // namespace cpu
// CUDA backend: device pointers of the activation type, asynchronous on `stream`;
// the arithmetic is fp32.
namespace cuda {
// y (n) = gelu(x (n)); y may alias x.
void gelu_forward(const void* x, int64_t n, DType dtype, void* y, CUstream_st* stream = nullptr);
// dx (n) = dy (n) * gelu'(x (n)); dx may alias dy.
void gelu_backward(const void* x, const void* dy, int64_t n, DType dtype, void* dx, CUstream_st* stream = nullptr);
}  // namespace cuda

}  // namespace spt
