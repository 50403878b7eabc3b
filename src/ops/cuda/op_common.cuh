// Device helpers shared by the non-attention CUDA ops: element conversion between fp32
// and the activation types, vector loads of four elements, warp and block sums in a
// fixed order, the DType dispatch of the launchers and the launch geometry.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/dtype.h"

namespace spt::cuda::ops {

constexpr int kBlockThreads = 256;
constexpr int kWarpSize = 32;

__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load_f32(const __half* p) { return __half2float(*p); }

// Stores round to nearest even.
__device__ __forceinline__ void store_f32(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f32(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }
__device__ __forceinline__ void store_f32(__half* p, float x) { *p = __float2half_rn(x); }

// Four consecutive elements starting at p, which is aligned to 4 * sizeof(T).
__device__ __forceinline__ void load4(const float* p, float out[4]) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  out[0] = v.x;
  out[1] = v.y;
  out[2] = v.z;
  out[3] = v.w;
}
__device__ __forceinline__ void load4(const __nv_bfloat16* p, float out[4]) {
  const uint2 raw = *reinterpret_cast<const uint2*>(p);
  const __nv_bfloat162 lo = *reinterpret_cast<const __nv_bfloat162*>(&raw.x);
  const __nv_bfloat162 hi = *reinterpret_cast<const __nv_bfloat162*>(&raw.y);
  out[0] = __low2float(lo);
  out[1] = __high2float(lo);
  out[2] = __low2float(hi);
  out[3] = __high2float(hi);
}
__device__ __forceinline__ void load4(const __half* p, float out[4]) {
  const uint2 raw = *reinterpret_cast<const uint2*>(p);
  const __half2 lo = *reinterpret_cast<const __half2*>(&raw.x);
  const __half2 hi = *reinterpret_cast<const __half2*>(&raw.y);
  out[0] = __low2float(lo);
  out[1] = __high2float(lo);
  out[2] = __low2float(hi);
  out[3] = __high2float(hi);
}

__device__ __forceinline__ void store4(float* p, const float in[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(in[0], in[1], in[2], in[3]);
}
__device__ __forceinline__ void store4(__nv_bfloat16* p, const float in[4]) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(in[0], in[1]);
  const __nv_bfloat162 hi = __floats2bfloat162_rn(in[2], in[3]);
  uint2 raw;
  raw.x = *reinterpret_cast<const uint32_t*>(&lo);
  raw.y = *reinterpret_cast<const uint32_t*>(&hi);
  *reinterpret_cast<uint2*>(p) = raw;
}
__device__ __forceinline__ void store4(__half* p, const float in[4]) {
  const __half2 lo = __floats2half2_rn(in[0], in[1]);
  const __half2 hi = __floats2half2_rn(in[2], in[3]);
  uint2 raw;
  raw.x = *reinterpret_cast<const uint32_t*>(&lo);
  raw.y = *reinterpret_cast<const uint32_t*>(&hi);
  *reinterpret_cast<uint2*>(p) = raw;
}

// Elements of T in one 16-byte access: 4 fp32, 8 bf16 or fp16.
template <typename T>
inline constexpr int kVector = static_cast<int>(16 / sizeof(T));

// kVector<T> consecutive elements starting at p, which is aligned to 16 bytes, as one access;
// stores round to nearest even.
__device__ __forceinline__ void load_vector(const float* p, float (&out)[4]) { load4(p, out); }
__device__ __forceinline__ void store_vector(float* p, const float (&in)[4]) { store4(p, in); }

template <typename Pair>  // __nv_bfloat162 or __half2
__device__ __forceinline__ void load_pairs(const void* p, float (&out)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const Pair pair = *reinterpret_cast<const Pair*>(&words[i]);
    out[2 * i] = __low2float(pair);
    out[2 * i + 1] = __high2float(pair);
  }
}
__device__ __forceinline__ void load_vector(const __nv_bfloat16* p, float (&out)[8]) {
  load_pairs<__nv_bfloat162>(p, out);
}
__device__ __forceinline__ void load_vector(const __half* p, float (&out)[8]) { load_pairs<__half2>(p, out); }

// Two values rounded to T (bf16 or fp16) in one word, `lo` in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  uint32_t bits;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&bits, &v, 4);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&bits, &v, 4);
  }
  return bits;
}
template <typename T>  // bf16 or fp16
__device__ __forceinline__ void store_vector(T* p, const float (&in)[8]) {
  uint32_t words[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) words[i] = pack_pair<T>(in[2 * i], in[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = make_uint4(words[0], words[1], words[2], words[3]);
}

// Butterfly sums: every lane ends with the same value, summed in the same order on
// every run.
template <typename Real>
__device__ __forceinline__ Real warp_sum(Real x) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

// Sum over a block of kBlockThreads threads; every thread gets the result. `scratch`
// holds kBlockThreads / 32 values; the call synchronizes the block twice, so it may be
// reused right after.
template <typename Real>
__device__ __forceinline__ Real block_sum(Real x, Real* scratch) {
  constexpr int kWarps = kBlockThreads / kWarpSize;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  x = warp_sum(x);
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  Real total = lane < kWarps ? scratch[lane] : Real(0);
  total = warp_sum(total);
  __syncthreads();
  return total;
}

// Calls fn(T{}) with T the element type of `dtype`.
template <typename Fn>
void dispatch_dtype(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(__nv_bfloat16{}); return;
    case DType::f16: fn(__half{}); return;
  }
  SPT_CHECK(false, op, ": unknown dtype value ", static_cast<int>(dtype), "; use DType::f32, bf16 or f16");
}

// Blocks of kBlockThreads that cover `work` items, capped so that grid-stride loops take
// the rest (the cap depends on `work` only, never on the device).
inline unsigned grid_for(int64_t work, int64_t per_thread = 1) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 20;
  const int64_t threads = (work + per_thread - 1) / per_thread;
  int64_t blocks = (threads + kBlockThreads - 1) / kBlockThreads;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace spt::cuda::ops

// Checks the launch just made on the host: a bad configuration fails here, naming the op.
#define SPT_CUDA_CHECK_LAUNCH() SPT_CUDA_CHECK(cudaGetLastError())
