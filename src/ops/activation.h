// The feed-forward activation: gelu(x) = x * sigmoid(1.702 x) (the paper's
// approximation of GELU).
#pragma once

#include <cstdint>

namespace spt {

inline constexpr float kGeluSlope = 1.702f;

namespace cpu {

// y (n) = gelu(x (n)); y may alias x.
void gelu_forward(const float* x, int64_t n, float* y);

// dx (n) = dy (n) * gelu'(x (n)); dx may alias dy.
void gelu_backward(const float* x, const float* dy, int64_t n, float* dx);

}  // namespace cpu
// The CUDA backend declares the same entry points in namespace spt::cuda.

}  // namespace spt
