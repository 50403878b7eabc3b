// GELU on the device: each thread takes groups of 16 bytes of elements, loaded and stored as
// one vector when every pointer allows it. The arithmetic is fp32: with the accurate expf
// and division for fp32 activations; for bf16 and fp16, whose rounding (2^-9, 2^-12) is far
// above their error (a few fp32 ulps), with the fast exponential and reciprocal, which
// halve the instructions per element.
#include <type_traits>

#include "ops/activation.h"
#include "ops/cuda/op_common.cuh"

namespace spt::cuda {
namespace {

template <typename T>
__device__ __forceinline__ float sigmoid_of_slope(float x) {
  if constexpr (std::is_same_v<T, float>) return 1.0f / (1.0f + expf(-kGeluSlope * x));
  else return __fdividef(1.0f, 1.0f + __expf(-kGeluSlope * x));
}
template <typename T>
__device__ __forceinline__ float gelu(float x) { return x * sigmoid_of_slope<T>(x); }
template <typename T>
__device__ __forceinline__ float gelu_grad(float x, float dy) {
  const float s = sigmoid_of_slope<T>(x);
  return dy * (s + kGeluSlope * x * s * (1.0f - s));
}

// Each thread takes groups of kVector<T> elements (one 16-byte access each) when every pointer
// is 16-byte aligned, else single elements from the same groups.
// x, y: (n); y may alias x (each element is read before it is written, by one thread).
template <typename T>
__global__ void gelu_forward_kernel(const T* x, int64_t n, bool vector, T* y) {
  constexpr int V = ops::kVector<T>;
  const int64_t groups = (n + V - 1) / V;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < groups; g += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = g * V;
    if (vector && e + V <= n) {
      float v[V];
      ops::load_vector(x + e, v);
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = gelu<T>(v[i]);
      ops::store_vector(y + e, v);
    } else {
      for (int64_t i = e; i < n && i < e + V; ++i) ops::store_f32(y + i, gelu<T>(ops::load_f32(x + i)));
    }
  }
}

// x, dy, dx: (n); dx may alias dy.
template <typename T>
__global__ void gelu_backward_kernel(const T* x, const T* dy, int64_t n, bool vector, T* dx) {
  constexpr int V = ops::kVector<T>;
  const int64_t groups = (n + V - 1) / V;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < groups; g += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = g * V;
    if (vector && e + V <= n) {
      float xv[V], gv[V];
      ops::load_vector(x + e, xv);
      ops::load_vector(dy + e, gv);
#pragma unroll
      for (int i = 0; i < V; ++i) gv[i] = gelu_grad<T>(xv[i], gv[i]);
      ops::store_vector(dx + e, gv);
    } else {
      for (int64_t i = e; i < n && i < e + V; ++i)
        ops::store_f32(dx + i, gelu_grad<T>(ops::load_f32(x + i), ops::load_f32(dy + i)));
    }
  }
}

}  // namespace

void gelu_forward(const void* x, int64_t n, DType dtype, void* y, CUstream_st* stream) {
  SPT_CHECK(n >= 0, "gelu_forward: element count n=", n, " must not be negative");
  if (n == 0) return;
  SPT_CHECK(x != nullptr && y != nullptr, "gelu_forward: null device pointer (x or y) for n=", n);
  ops::dispatch_dtype(dtype, "gelu_forward", [&](auto tag) {
    using T = decltype(tag);
    const bool vector = ops::aligned_to(x, 16) && ops::aligned_to(y, 16);
    gelu_forward_kernel<T><<<ops::grid_for(n, ops::kVector<T>), ops::kBlockThreads, 0, stream>>>(static_cast<const T*>(x), n,
                                                                                     vector, static_cast<T*>(y));
    SPT_CUDA_CHECK_LAUNCH();
  });
}

void gelu_backward(const void* x, const void* dy, int64_t n, DType dtype, void* dx, CUstream_st* stream) {
  SPT_CHECK(n >= 0, "gelu_backward: element count n=", n, " must not be negative");
  if (n == 0) return;
  SPT_CHECK(x != nullptr && dy != nullptr && dx != nullptr, "gelu_backward: null device pointer (x, dy or dx) for n=",
            n);
  ops::dispatch_dtype(dtype, "gelu_backward", [&](auto tag) {
    using T = decltype(tag);
    const bool vector = ops::aligned_to(x, 16) && ops::aligned_to(dy, 16) && ops::aligned_to(dx, 16);
    gelu_backward_kernel<T><<<ops::grid_for(n, ops::kVector<T>), ops::kBlockThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(dy), n, vector, static_cast<T*>(dx));
    SPT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace spt::cuda
