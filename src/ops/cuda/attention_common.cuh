// Device pieces shared by the sparse attention kernels: the element predicate of a
// head, the layout view a kernel walks, tile loads and element conversions.
//
// Tiling: a kernel works on tiles of TILE query rows (or key rows) with TILE = min(BS, 64),
// so a layout block of 128 is visited as two tiles. 256 threads form a 16 x 16 grid
// (tx = thread % 16, ty = thread / 16); a thread owns the TILE/16 rows ty + 16 * r of a
// tile and the columns tx + 16 * c of a (TILE, TILE) score tile or a (TILE, D) output tile.
// Queries and keys have head dim DK, values and outputs DV (DK = DV, or DK = DV / 2 for
// half-width q/k); D below stands for either.
// Shared-memory tiles hold fp32 rows padded by one word so that reading one column of 16
// rows hits 16 different banks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "ops/cuda/op_common.cuh"

namespace spt::cuda::detail {

constexpr int kThreads = 256;
constexpr int kGrid = 16;  // threads per tile row and rows of threads

// PatternKind values as the device sees them.
enum DeviceKind : int { kDense = 0, kLocal = 1, kStrided = 2, kFixed = 3 };

// HeadMask in device form: the same fields, evaluated arithmetically (no stored bits).
struct DeviceHeadMask {
  int kind;
  int stride;      // l
  int summary_lo;  // fixed: summary columns are j mod l in [summary_lo, summary_hi)
  int summary_hi;
  int use_a1;
  int use_a2;
};

// HeadMask::allows(i, j) for 0 <= i, j < 2^31.
__device__ __forceinline__ bool head_allows(const DeviceHeadMask& m, int i, int j) {
  if (j > i || j < 0) return false;
  if (m.use_a1) {
    switch (m.kind) {
      case kDense: return true;
      case kLocal:
      case kStrided:
        if (i - j < m.stride) return true;
        break;
      case kFixed:
        if (j / m.stride == i / m.stride) return true;
        break;
      default: break;
    }
  }
  if (m.use_a2) {
    if (m.kind == kStrided && (i - j) % m.stride == 0) return true;
    if (m.kind == kFixed) {
      const int r = j % m.stride;
      if (r >= m.summary_lo && r < m.summary_hi) return true;
    }
  }
  return false;
}

// The device plan as kernel parameters.
struct LayoutView {
  const int64_t* row_begin;    // (H * nb + 1)
  const int32_t* key_block;    // (nnz)
  const uint8_t* key_full;     // (nnz)
  const int64_t* col_begin;    // (H * nb + 1)
  const int32_t* query_block;  // (nnz)
  const uint8_t* query_full;   // (nnz)
  const DeviceHeadMask* masks;  // (H)
  int T;
  int block;   // BS
  int blocks;  // nb
};

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
using ops::store_f32;

// Copies rows [0, rows) of a (TILE, D) head slice with row stride `stride` into a padded
// fp32 tile (TILE, D + 1); rows [rows, TILE) become zero so they add nothing.
template <int D, int TILE, typename Scalar>
__device__ __forceinline__ void load_tile(float* tile, const Scalar* src, int64_t stride, int rows) {
  for (int e = threadIdx.x; e < TILE * D; e += kThreads) {
    const int r = e / D, c = e % D;
    tile[r * (D + 1) + c] = r < rows ? to_float(src[r * stride + c]) : 0.0f;
  }
}

// Sum over the 16 threads of a half warp that share ty.
__device__ __forceinline__ float sum_over_row_threads(float x) {
#pragma unroll
  for (int offset = kGrid / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__device__ __forceinline__ float max_over_row_threads(float x) {
#pragma unroll
  for (int offset = kGrid / 2; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

// Dynamic shared memory of each kernel, in floats: DK is the query/key head dim, DV the
// value/output head dim.
template <int DK, int DV, int TILE>
constexpr int forward_smem_floats() {
  return 2 * TILE * (DK + 1) + TILE * (DV + 1) + TILE * (TILE + 1);
}
template <int DK, int DV, int TILE>
constexpr int dkdv_smem_floats() {
  return 2 * TILE * (DK + 1) + 2 * TILE * (DV + 1) + 2 * TILE * (TILE + 1) + 2 * TILE;
}
template <int DK, int DV, int TILE>
constexpr int dq_smem_floats() {
  return 2 * TILE * (DK + 1) + 2 * TILE * (DV + 1) + TILE * (TILE + 1) + 2 * TILE;
}

}  // namespace spt::cuda::detail
