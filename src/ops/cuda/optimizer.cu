// The whole-buffer ops of the training step on the device: AdamW, the weight average,
// the fp64 sum of squares behind the gradient norm, and scaling.
//
// AdamW does its element arithmetic in fp64 and stores fp32, exactly the CPU's formula
// (src/train/optimizer.cpp) with the bias corrections computed on the host by the same
// expressions: given the same fp32 inputs the two agree to the last bit except where
// fused multiply-adds change a rounding of the fp64 intermediate (a few fp32 ulps at most).
#include <cmath>

#include "ops/cuda/op_common.cuh"
#include "ops/cuda/optimizer.h"

namespace spt::cuda {
namespace {

// The per-step constants, in fp64.
struct AdamWConstants {
  double beta1, beta2, eps;
  double step_size;         // lr / (1 - beta1^step)
  double sqrt_correction2;  // sqrt(1 - beta2^step)
  double decay_factor;      // 1 - lr * weight_decay
  float grad_scale;
};

// Index of the last segment whose offset is <= i, or -1 (segments sorted by offset).
__device__ __forceinline__ int find_segment(const ParamSegment* segments, int count, int64_t i) {
  int lo = 0, hi = count;  // the answer + 1 lies in [lo, hi]
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (segments[mid].offset <= i)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo - 1;
}

// weights, grads, m, v: (n) fp32; compute_copy: (n) of T or null. Elements outside
// every decay segment (other segments and gaps) are updated without decay.
template <typename T>
__global__ void adamw_kernel(const ParamSegment* __restrict__ segments, int count, int64_t n, AdamWConstants k,
                             float* __restrict__ weights, const float* __restrict__ grads, float* __restrict__ m,
                             float* __restrict__ v, T* __restrict__ compute_copy) {
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const int s = find_segment(segments, count, i);
    const bool decay = s >= 0 && i < segments[s].offset + segments[s].size && segments[s].decay;
    const double g = __fmul_rn(grads[i], k.grad_scale);
    const double m_new = k.beta1 * m[i] + (1.0 - k.beta1) * g;
    const double v_new = k.beta2 * v[i] + (1.0 - k.beta2) * g * g;
    m[i] = static_cast<float>(m_new);
    v[i] = static_cast<float>(v_new);
    const double p = static_cast<double>(weights[i]) * (decay ? k.decay_factor : 1.0);
    const float w = static_cast<float>(p - k.step_size * m_new / (sqrt(v_new) / k.sqrt_correction2 + k.eps));
    weights[i] = w;
    if (compute_copy != nullptr) ops::store_f32(compute_copy + i, w);
  }
}

// ema (n) = fma(keep, ema, take * weights): explicit roundings, so that no contraction
// choice of the compiler changes the bits (the CPU computes the same expression).
__global__ void ema_kernel(const float* __restrict__ weights, float* __restrict__ ema, int64_t n, double keep,
                           double take) {
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    ema[i] = __double2float_rn(__fma_rn(keep, static_cast<double>(ema[i]), __dmul_rn(take, weights[i])));
}

// Partial sums of squares: thread j of the grid takes the groups of four elements
// j, j + threads, ... in order (vector loads or not, the same elements in the same
// order), then each block sums its threads; partial: (gridDim.x).
__global__ void sum_of_squares_partial_kernel(const float* __restrict__ x, int64_t n, bool vector,
                                              double* __restrict__ partial) {
  __shared__ double scratch[ops::kBlockThreads / ops::kWarpSize];
  const int64_t groups = (n + 3) / 4;
  double acc = 0.0;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < groups; g += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = g * 4;
    float values[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (vector && e + 4 <= n) {
      ops::load4(x + e, values);
    } else {
      for (int i = 0; i < 4 && e + i < n; ++i) values[i] = x[e + i];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) acc += static_cast<double>(values[i]) * values[i];
  }
  acc = ops::block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// total = sum of partial (count), one block, a fixed order.
__global__ void sum_partials_kernel(const double* __restrict__ partial, int count, double* __restrict__ total) {
  __shared__ double scratch[ops::kBlockThreads / ops::kWarpSize];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += ops::kBlockThreads) acc += partial[i];
  acc = ops::block_sum(acc, scratch);
  if (threadIdx.x == 0) *total = acc;
}

// x: (n) *= factor.
__global__ void scale_kernel(float* __restrict__ x, int64_t n, float factor, bool vector) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < groups; g += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = g * 4;
    if (vector && e + 4 <= n) {
      float values[4];
      ops::load4(x + e, values);
#pragma unroll
      for (int i = 0; i < 4; ++i) values[i] *= factor;
      ops::store4(x + e, values);
    } else {
      for (int64_t i = e; i < n && i < e + 4; ++i) x[i] *= factor;
    }
  }
}

}  // namespace

void adamw_step(const ParamSegment* segments, int count, int64_t n, const AdamWParams& params, float* weights,
                const float* grads, float* m, float* v, DType compute_dtype, void* compute_copy,
                CUstream_st* stream) {
  SPT_CHECK(n >= 1, "adamw_step: parameter count n=", n, " must be positive");
  SPT_CHECK(count >= 0 && (count == 0 || segments != nullptr), "adamw_step: ", count,
            " segments need a device segment table (got ", segments == nullptr ? "null" : "a pointer", ")");
  SPT_CHECK(weights != nullptr && grads != nullptr && m != nullptr && v != nullptr,
            "adamw_step: null device pointer among weights, grads, m, v (n=", n, ")");
  SPT_CHECK(params.beta1 >= 0 && params.beta1 < 1 && params.beta2 >= 0 && params.beta2 < 1, "adamw_step: betas (",
            params.beta1, ", ", params.beta2, ") must lie in [0, 1)");
  SPT_CHECK(params.eps > 0, "adamw_step: eps ", params.eps, " must be positive");
  SPT_CHECK(params.step >= 1, "adamw_step: step ", params.step, " must count from 1 (increment before the call)");
  AdamWConstants k{};
  k.beta1 = params.beta1;
  k.beta2 = params.beta2;
  k.eps = params.eps;
  const double lr = params.lr;
  k.step_size = lr / (1.0 - std::pow(k.beta1, static_cast<double>(params.step)));
  k.sqrt_correction2 = std::sqrt(1.0 - std::pow(k.beta2, static_cast<double>(params.step)));
  k.decay_factor = 1.0 - lr * static_cast<double>(params.weight_decay);
  k.grad_scale = params.grad_scale;
  ops::dispatch_dtype(compute_dtype, "adamw_step", [&](auto tag) {
    using T = decltype(tag);
    adamw_kernel<T><<<ops::grid_for(n), ops::kBlockThreads, 0, stream>>>(segments, count, n, k, weights, grads, m, v,
                                                                         static_cast<T*>(compute_copy));
    SPT_CUDA_CHECK_LAUNCH();
  });
}

void ema_update(const float* weights, float* ema, int64_t n, double decay, CUstream_st* stream) {
  SPT_CHECK(n >= 0, "ema_update: element count n=", n, " must not be negative");
  SPT_CHECK(decay >= 0 && decay < 1, "ema_update: decay ", decay, " must be in [0, 1) (--ema)");
  if (n == 0) return;
  SPT_CHECK(weights != nullptr && ema != nullptr, "ema_update: null device pointer among weights, ema (n=", n, ")");
  ema_kernel<<<ops::grid_for(n), ops::kBlockThreads, 0, stream>>>(weights, ema, n, decay, 1.0 - decay);
  SPT_CUDA_CHECK_LAUNCH();
}

double sum_of_squares(const float* x, int64_t n, CUstream_st* stream) {
  SPT_CHECK(n >= 0, "sum_of_squares: element count n=", n, " must not be negative");
  if (n == 0) return 0.0;
  SPT_CHECK(x != nullptr, "sum_of_squares: null device pointer x for n=", n);
  // A grid that depends on n only: at most 1024 blocks, so the final sum is one block's.
  constexpr int64_t kMaxBlocks = 1024;
  int64_t blocks = (n + 4 * ops::kBlockThreads - 1) / (4 * ops::kBlockThreads);
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  double* scratch = nullptr;  // (blocks) partial sums, then the total
  SPT_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&scratch), (blocks + 1) * sizeof(double), stream));
  sum_of_squares_partial_kernel<<<static_cast<unsigned>(blocks), ops::kBlockThreads, 0, stream>>>(
      x, n, ops::aligned_to(x, 16), scratch);
  SPT_CUDA_CHECK_LAUNCH();
  sum_partials_kernel<<<1, ops::kBlockThreads, 0, stream>>>(scratch, static_cast<int>(blocks), scratch + blocks);
  SPT_CUDA_CHECK_LAUNCH();
  double total = 0.0;
  SPT_CUDA_CHECK(cudaMemcpyAsync(&total, scratch + blocks, sizeof(double), cudaMemcpyDeviceToHost, stream));
  SPT_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  SPT_CUDA_CHECK(cudaStreamSynchronize(stream));
  return total;
}

void scale(float* x, int64_t n, float factor, CUstream_st* stream) {
  SPT_CHECK(n >= 0, "scale: element count n=", n, " must not be negative");
  if (n == 0) return;
  SPT_CHECK(x != nullptr, "scale: null device pointer x for n=", n);
  scale_kernel<<<ops::grid_for(n, 4), ops::kBlockThreads, 0, stream>>>(x, n, factor, ops::aligned_to(x, 16));
  SPT_CUDA_CHECK_LAUNCH();
}

}  // namespace spt::cuda
