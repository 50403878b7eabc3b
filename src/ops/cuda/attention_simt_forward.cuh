// The SIMT sparse causal attention forward (fp32 math; the fp32 path and the fallback of the
// tensor-core kernel in attention_tc_forward.cu): one thread block per (batch row, head, query tile)
// walks the key blocks its query block lists, streams each (TILE, D) key and value tile
// through shared memory and keeps the online-softmax statistics and the output rows in
// registers. Only partial blocks evaluate the element predicate.
// The instances of each element type compile in their own file
// (attention_simt_forward_<type>.cu), so that the three build in parallel; every other file
// sees only the declarations at the end.
#pragma once

#include <cmath>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/cuda_check.h"
#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/attention_launch.h"

namespace spt::cuda::detail {

template <typename Scalar>
struct ForwardArgs {
  const Scalar* q;    // (B, T, q_stride), head h at column h * DK
  const Scalar* k;    // (B, T, k_stride), head h at column h * DK
  const Scalar* v;    // (B, T, v_stride), head h at column h * DV
  Scalar* out;        // (B, T, out_stride), head h at column h * DV
  float* lse;         // (B, H, T)
  int64_t q_stride, k_stride, v_stride, out_stride;
  float scale;        // 1 / sqrt(DK)
};

template <int DK, int DV, int TILE, typename Scalar>
__global__ void __launch_bounds__(kThreads, 1) attention_forward_kernel(LayoutView layout, ForwardArgs<Scalar> args) {
  constexpr int R = TILE / kGrid;  // rows (and keys) per thread
  constexpr int C = DV / kGrid;    // output columns per thread
  constexpr int KP = DK + 1;
  constexpr int VP = DV + 1;
  constexpr int TP = TILE + 1;
  extern __shared__ float smem[];
  float* q_tile = smem;                // (TILE, KP)
  float* k_tile = q_tile + TILE * KP;  // (TILE, KP)
  float* v_tile = k_tile + TILE * KP;  // (TILE, VP)
  float* p_tile = v_tile + TILE * VP;  // (TILE, TP) probabilities, row = query

  const int T = layout.T;
  const int h = blockIdx.y, b = blockIdx.z, H = gridDim.y;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * TILE;  // the longest rows start first
  const int tx = threadIdx.x % kGrid, ty = threadIdx.x / kGrid;
  const DeviceHeadMask mask = layout.masks[h];
  const int64_t batch_row0 = int64_t{b} * T;

  load_tile<DK, TILE>(q_tile, args.q + (batch_row0 + q0) * args.q_stride + int64_t{h} * DK, args.q_stride,
                     min(TILE, T - q0));

  float row_max[R], row_sum[R], acc[R][C];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c) acc[r][c] = 0.0f;
  }

  const int64_t list = int64_t{h} * layout.blocks + q0 / layout.block;
  const int64_t list_end = layout.row_begin[list + 1];
  const int last_query = q0 + TILE - 1;
  for (int64_t e = layout.row_begin[list]; e < list_end; ++e) {
    const int key_block = layout.key_block[e];
    const bool full = layout.key_full[e] != 0;
    const int block_end = min(T, (key_block + 1) * layout.block);
    // Key tiles past the tile's last query hold no causal pair.
    for (int k0 = key_block * layout.block; k0 < block_end && k0 <= last_query; k0 += TILE) {
      const int keys = min(TILE, block_end - k0);
      __syncthreads();  // the previous tile's readers are done
      load_tile<DK, TILE>(k_tile, args.k + (batch_row0 + k0) * args.k_stride + int64_t{h} * DK, args.k_stride, keys);
      load_tile<DV, TILE>(v_tile, args.v + (batch_row0 + k0) * args.v_stride + int64_t{h} * DV, args.v_stride, keys);
      __syncthreads();

      float s[R][R];
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < R; ++j) s[r][j] = 0.0f;
#pragma unroll 8
      for (int d = 0; d < DK; ++d) {
        float qd[R], kd[R];
#pragma unroll
        for (int r = 0; r < R; ++r) qd[r] = q_tile[(ty + kGrid * r) * KP + d];
#pragma unroll
        for (int j = 0; j < R; ++j) kd[j] = k_tile[(tx + kGrid * j) * KP + d];
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int j = 0; j < R; ++j) s[r][j] = fmaf(qd[r], kd[j], s[r][j]);
      }

#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int i = q0 + ty + kGrid * r;
        float tile_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < R; ++j) {
          const int key = tx + kGrid * j;
          const bool allowed = key < keys && (full || head_allows(mask, i, k0 + key));
          s[r][j] = allowed ? args.scale * s[r][j] : -INFINITY;
          tile_max = fmaxf(tile_max, s[r][j]);
        }
        tile_max = max_over_row_threads(tile_max);
        const float new_max = fmaxf(row_max[r], tile_max);
        // While a row has seen no allowed key its maximum is -inf; subtracting 0 instead
        // keeps exp(-inf - max) at 0 rather than NaN.
        const float shift = new_max == -INFINITY ? 0.0f : new_max;
        const float rescale = expf(row_max[r] - shift);
        float tile_sum = 0.0f;
#pragma unroll
        for (int j = 0; j < R; ++j) {
          const float p = expf(s[r][j] - shift);
          tile_sum += p;
          p_tile[(ty + kGrid * r) * TP + tx + kGrid * j] = p;
        }
        tile_sum = sum_over_row_threads(tile_sum);
        row_sum[r] = row_sum[r] * rescale + tile_sum;
        row_max[r] = new_max;
#pragma unroll
        for (int c = 0; c < C; ++c) acc[r][c] *= rescale;
      }
      __syncthreads();

#pragma unroll 4
      for (int key = 0; key < TILE; ++key) {
        float vd[C];
#pragma unroll
        for (int c = 0; c < C; ++c) vd[c] = v_tile[key * VP + tx + kGrid * c];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float p = p_tile[(ty + kGrid * r) * TP + key];
#pragma unroll
          for (int c = 0; c < C; ++c) acc[r][c] = fmaf(p, vd[c], acc[r][c]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = q0 + ty + kGrid * r;
    if (i >= T) continue;
    Scalar* out_row = args.out + (batch_row0 + i) * args.out_stride + int64_t{h} * DV;
    const bool empty = row_sum[r] == 0.0f;
    const float inv = empty ? 0.0f : 1.0f / row_sum[r];
#pragma unroll
    for (int c = 0; c < C; ++c) store_f32(out_row + tx + kGrid * c, acc[r][c] * inv);
    if (tx == 0)
      args.lse[(int64_t{b} * H + h) * T + i] = empty ? -INFINITY : row_max[r] + logf(row_sum[r]);
  }
}

template <int DK, int DV, int TILE, typename Scalar>
void launch_forward(const LaunchGeometry& g, const LayoutView& layout, const ForwardArgs<Scalar>& args) {
  const auto kernel = attention_forward_kernel<DK, DV, TILE, Scalar>;
  const size_t smem = sizeof(float) * forward_smem_floats<DK, DV, TILE>();
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem);
  kernel<<<g.grid(TILE), kThreads, smem, g.stream>>>(layout, args);
  SPT_CUDA_CHECK(cudaGetLastError());
}

// The forward kernel of one element type at the call's tile and head dims.
template <typename Scalar>
void simt_forward(const LaunchGeometry& g, const LayoutView& layout, const void* q, const void* k, const void* v,
                  void* out, float* lse) {
  const AttentionShape& s = g.shape;
  const ForwardArgs<Scalar> args{static_cast<const Scalar*>(q), static_cast<const Scalar*>(k),
                                 static_cast<const Scalar*>(v), static_cast<Scalar*>(out), lse, s.q_stride,
                                 s.k_stride, s.v_stride, s.out_stride, g.scale};
  dispatch_tile_and_dims(g.tile, s.Dk, s.Dv, [&](auto tile, auto dk, auto dv) {
    launch_forward<decltype(dk)::value, decltype(dv)::value, decltype(tile)::value, Scalar>(g, layout, args);
  });
}

extern template void simt_forward<float>(const LaunchGeometry&, const LayoutView&, const void*, const void*,
                                          const void*, void*, float*);
extern template void simt_forward<__nv_bfloat16>(const LaunchGeometry&, const LayoutView&, const void*, const void*,
                                                  const void*, void*, float*);
extern template void simt_forward<__half>(const LaunchGeometry&, const LayoutView&, const void*, const void*,
                                           const void*, void*, float*);

}  // namespace spt::cuda::detail
