// Conversion between fp32 and the activation types, four elements per thread.
#include <type_traits>

#include "ops/cuda/op_common.cuh"
#include "ops/cuda/optimizer.h"

namespace spt::cuda {
namespace {

// src: (n) of From; dst: (n) of To; stores round to nearest even.
template <typename From, typename To>
__global__ void convert_kernel(const From* __restrict__ src, int64_t n, bool vector, To* __restrict__ dst) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < groups; g += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = g * 4;
    if (vector && e + 4 <= n) {
      float v[4];
      ops::load4(src + e, v);
      ops::store4(dst + e, v);
    } else {
      for (int64_t i = e; i < n && i < e + 4; ++i) ops::store_f32(dst + i, ops::load_f32(src + i));
    }
  }
}

}  // namespace

void convert_from_f32(const float* src, int64_t n, DType dst_dtype, void* dst, CUstream_st* stream) {
  SPT_CHECK(n >= 0, "convert_from_f32: element count n=", n, " must not be negative");
  if (n == 0) return;
  SPT_CHECK(src != nullptr && dst != nullptr, "convert_from_f32: null device pointer (src or dst) for n=", n);
  ops::dispatch_dtype(dst_dtype, "convert_from_f32", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      SPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice,
                                     stream));
    } else {
      const bool vector = ops::aligned_to(src, 16) && ops::aligned_to(dst, 4 * sizeof(T));
      convert_kernel<float, T><<<ops::grid_for(n, 4), ops::kBlockThreads, 0, stream>>>(src, n, vector,
                                                                                         static_cast<T*>(dst));
      SPT_CUDA_CHECK_LAUNCH();
    }
  });
}

void convert_to_f32(const void* src, int64_t n, DType src_dtype, float* dst, CUstream_st* stream) {
  SPT_CHECK(n >= 0, "convert_to_f32: element count n=", n, " must not be negative");
  if (n == 0) return;
  SPT_CHECK(src != nullptr && dst != nullptr, "convert_to_f32: null device pointer (src or dst) for n=", n);
  ops::dispatch_dtype(src_dtype, "convert_to_f32", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      SPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice,
                                     stream));
    } else {
      const bool vector = ops::aligned_to(src, 4 * sizeof(T)) && ops::aligned_to(dst, 16);
      convert_kernel<T, float><<<ops::grid_for(n, 4), ops::kBlockThreads, 0, stream>>>(static_cast<const T*>(src), n,
                                                                                         vector, dst);
      SPT_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace spt::cuda
