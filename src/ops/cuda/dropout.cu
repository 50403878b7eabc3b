// Dropout on the device: thread work is one Philox block, i.e. the four elements
// 4g .. 4g+3 whose uniforms are its four words, exactly as the CPU draws them.
#include "core/rng.h"
#include "ops/cuda/op_common.cuh"
#include "ops/dropout.h"
#include "ops/cuda/optimizer.h"

namespace spt::cuda {
namespace {

// Multiplier of element lane of group g: 0 (dropped) or keep_scale.
__device__ __forceinline__ float mask_scale(const PhiloxWords& words, int lane, float p, float keep_scale) {
  const float u = static_cast<float>(words[lane] >> 8) * (1.0f / 16777216.0f);
  return u >= p ? keep_scale : 0.0f;
}

// The value that storing v as T keeps.
template <typename T>
__device__ __forceinline__ float rounded(float v) {
  T stored;
  ops::store_f32(&stored, v);
  return ops::load_f32(&stored);
}

// out (n) of T = x (n) of From, rounded to T, times the mask; out may alias x (From == T).
template <typename From, typename T>
__global__ void dropout_apply_kernel(uint64_t key, float p, float keep_scale, int64_t n, bool vector, const From* x,
                                     T* out) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < groups; g += int64_t{gridDim.x} * blockDim.x) {
    const PhiloxWords words = Philox::block(key, static_cast<uint64_t>(g));
    const int64_t e = g * 4;
    if (vector && e + 4 <= n) {
      float v[4];
      ops::load4(x + e, v);
#pragma unroll
      for (int i = 0; i < 4; ++i) v[i] = __fmul_rn(rounded<T>(v[i]), mask_scale(words, i, p, keep_scale));
      ops::store4(out + e, v);
    } else {
      for (int i = 0; i < 4 && e + i < n; ++i)
        ops::store_f32(out + e + i,
                       __fmul_rn(rounded<T>(ops::load_f32(x + e + i)), mask_scale(words, i, p, keep_scale)));
    }
  }
}

// x: (n) of T; residual, out: (n) fp32, out may alias residual. Without a mask (p == 0)
// the multiplier is 1 and no Philox block is drawn. The product and the sum are rounded
// separately (no fused multiply-add), as the CPU writes them.
template <typename T>
__global__ void dropout_add_kernel(uint64_t key, float p, float keep_scale, bool masked, const T* x,
                                   const float* residual, int64_t n, bool vector, float* out) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < groups; g += int64_t{gridDim.x} * blockDim.x) {
    PhiloxWords words{{0u, 0u, 0u, 0u}};
    if (masked) words = Philox::block(key, static_cast<uint64_t>(g));
    const int64_t e = g * 4;
    float scales[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) scales[i] = masked ? mask_scale(words, i, p, keep_scale) : 1.0f;
    if (vector && e + 4 <= n) {
      float xv[4], rv[4];
      ops::load4(x + e, xv);
      ops::load4(residual + e, rv);
#pragma unroll
      for (int i = 0; i < 4; ++i) rv[i] = masked ? __fadd_rn(rv[i], __fmul_rn(xv[i], scales[i])) : rv[i] + xv[i];
      ops::store4(out + e, rv);
    } else {
      for (int i = 0; i < 4 && e + i < n; ++i) {
        const float xi = ops::load_f32(x + e + i), ri = residual[e + i];
        out[e + i] = masked ? __fadd_rn(ri, __fmul_rn(xi, scales[i])) : ri + xi;
      }
    }
  }
}

void check_rate(const char* op, float p) {
  SPT_CHECK(p >= 0.0f && p < 1.0f, op, ": dropout rate ", p, " must be in [0, 1)");
}

}  // namespace

void dropout_apply(uint64_t key, float p, int64_t n, DType dtype, void* x, CUstream_st* stream) {
  check_rate("dropout_apply", p);
  SPT_CHECK(n >= 0, "dropout_apply: element count n=", n, " must not be negative");
  if (n == 0 || p == 0.0f) return;  // every multiplier is 1: x stays as it is
  SPT_CHECK(x != nullptr, "dropout_apply: null device pointer x for n=", n);
  const float keep_scale = 1.0f / (1.0f - p);
  ops::dispatch_dtype(dtype, "dropout_apply", [&](auto tag) {
    using T = decltype(tag);
    const bool vector = ops::aligned_to(x, 4 * sizeof(T));
    dropout_apply_kernel<T, T><<<ops::grid_for(n, 4), ops::kBlockThreads, 0, stream>>>(
        key, p, keep_scale, n, vector, static_cast<const T*>(x), static_cast<T*>(x));
    SPT_CUDA_CHECK_LAUNCH();
  });
}

void dropout_convert(uint64_t key, float p, const float* x, int64_t n, DType dtype, void* out, CUstream_st* stream) {
  check_rate("dropout_convert", p);
  SPT_CHECK(n >= 0, "dropout_convert: element count n=", n, " must not be negative");
  if (n == 0) return;
  SPT_CHECK(x != nullptr && out != nullptr, "dropout_convert: null device pointer (x or out) for n=", n);
  if (p == 0.0f) return convert_from_f32(x, n, dtype, out, stream);
  const float keep_scale = 1.0f / (1.0f - p);
  ops::dispatch_dtype(dtype, "dropout_convert", [&](auto tag) {
    using T = decltype(tag);
    const bool vector = ops::aligned_to(x, 16) && ops::aligned_to(out, 4 * sizeof(T));
    dropout_apply_kernel<float, T><<<ops::grid_for(n, 4), ops::kBlockThreads, 0, stream>>>(
        key, p, keep_scale, n, vector, x, static_cast<T*>(out));
    SPT_CUDA_CHECK_LAUNCH();
  });
}

void dropout_add(uint64_t key, float p, const void* x, DType dtype, const float* residual, int64_t n, float* out,
                 CUstream_st* stream) {
  check_rate("dropout_add", p);
  SPT_CHECK(n >= 0, "dropout_add: element count n=", n, " must not be negative");
  if (n == 0) return;
  SPT_CHECK(x != nullptr && residual != nullptr && out != nullptr,
            "dropout_add: null device pointer (x, residual or out) for n=", n);
  const float keep_scale = 1.0f / (1.0f - p);
  ops::dispatch_dtype(dtype, "dropout_add", [&](auto tag) {
    using T = decltype(tag);
    const bool vector = ops::aligned_to(x, 4 * sizeof(T)) && ops::aligned_to(residual, 16) && ops::aligned_to(out, 16);
    dropout_add_kernel<T><<<ops::grid_for(n, 4), ops::kBlockThreads, 0, stream>>>(
        key, p, keep_scale, p != 0.0f, static_cast<const T*>(x), residual, n, vector, out);
    SPT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace spt::cuda
