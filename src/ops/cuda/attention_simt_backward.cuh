// The SIMT dK/dV and dQ kernels of the attention backward (see attention_backward.cu for the
// scheme) for every tile and head-dim pair the dispatcher knows. The instances of each element
// type compile in their own file (attention_simt_backward_<type>.cu), so that the three build
// in parallel; every other file sees only the declarations below.
#pragma once

#include <cmath>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/cuda_check.h"
#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/attention_launch.h"
#include "ops/cuda/op_common.cuh"

namespace spt::cuda::detail {

template <typename Scalar>
struct BackwardArgs {
  const Scalar* q;     // (B, T, q_stride), head h at column h * DK
  const Scalar* k;     // (B, T, k_stride), head h at column h * DK
  const Scalar* v;     // (B, T, v_stride), head h at column h * DV
  const Scalar* dout;  // (B, T, out_stride), head h at column h * DV
  const float* lse;    // (B, H, T)
  const float* delta;  // (B, H, T)
  Scalar* dq;          // (B, T, q_stride)
  Scalar* dk;          // (B, T, k_stride)
  Scalar* dv;          // (B, T, v_stride)
  int64_t q_stride, k_stride, v_stride, out_stride;
  float scale;
};

// Copies lse and delta of rows [0, rows) of a tile; rows past the end get 0 (their
// probabilities are masked to 0 before either is used).
template <int TILE>
__device__ __forceinline__ void load_row_stats(float* lse_tile, float* delta_tile, const float* lse,
                                               const float* delta, int rows) {
  for (int r = threadIdx.x; r < TILE; r += kThreads) {
    lse_tile[r] = r < rows ? lse[r] : 0.0f;
    delta_tile[r] = r < rows ? delta[r] : 0.0f;
  }
}

template <int DK, int DV, int TILE, typename Scalar>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(LayoutView layout, BackwardArgs<Scalar> args) {
  constexpr int R = TILE / kGrid;  // keys (and queries) per thread
  constexpr int CK = DK / kGrid;   // dK columns per thread
  constexpr int CV = DV / kGrid;   // dV columns per thread
  constexpr int KP = DK + 1;
  constexpr int VP = DV + 1;
  constexpr int TP = TILE + 1;
  extern __shared__ float smem[];
  float* k_tile = smem;                  // (TILE, KP)
  float* v_tile = k_tile + TILE * KP;    // (TILE, VP)
  float* q_tile = v_tile + TILE * VP;    // (TILE, KP)
  float* g_tile = q_tile + TILE * KP;    // (TILE, VP) dout
  float* p_tile = g_tile + TILE * VP;    // (TILE, TP) P transposed: row = key
  float* ds_tile = p_tile + TILE * TP;   // (TILE, TP) dS transposed
  float* lse_tile = ds_tile + TILE * TP;   // (TILE)
  float* delta_tile = lse_tile + TILE;     // (TILE)

  const int T = layout.T;
  const int h = blockIdx.y, b = blockIdx.z, H = gridDim.y;
  const int k0 = blockIdx.x * TILE;  // early keys have the most queries and start first
  const int keys = min(TILE, T - k0);
  const int tx = threadIdx.x % kGrid, ty = threadIdx.x / kGrid;
  const DeviceHeadMask mask = layout.masks[h];
  const int64_t batch_row0 = int64_t{b} * T;
  const int64_t stats0 = (int64_t{b} * H + h) * T;

  load_tile<DK, TILE>(k_tile, args.k + (batch_row0 + k0) * args.k_stride + int64_t{h} * DK, args.k_stride, keys);
  load_tile<DV, TILE>(v_tile, args.v + (batch_row0 + k0) * args.v_stride + int64_t{h} * DV, args.v_stride, keys);

  float dk[R][CK], dv[R][CV];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int c = 0; c < CK; ++c) dk[r][c] = 0.0f;
#pragma unroll
    for (int c = 0; c < CV; ++c) dv[r][c] = 0.0f;
  }

  const int64_t list = int64_t{h} * layout.blocks + k0 / layout.block;
  const int64_t list_end = layout.col_begin[list + 1];
  for (int64_t e = layout.col_begin[list]; e < list_end; ++e) {
    const int query_block = layout.query_block[e];
    const bool full = layout.query_full[e] != 0;
    const int block_end = min(T, (query_block + 1) * layout.block);
    for (int i0 = query_block * layout.block; i0 < block_end; i0 += TILE) {
      // Query tiles that end before the first key hold no causal pair.
      if (i0 + TILE - 1 < k0) continue;
      const int rows = min(TILE, block_end - i0);
      __syncthreads();  // the previous tile's readers are done
      load_tile<DK, TILE>(q_tile, args.q + (batch_row0 + i0) * args.q_stride + int64_t{h} * DK, args.q_stride, rows);
      load_tile<DV, TILE>(g_tile, args.dout + (batch_row0 + i0) * args.out_stride + int64_t{h} * DV,
                          args.out_stride, rows);
      load_row_stats<TILE>(lse_tile, delta_tile, args.lse + stats0 + i0, args.delta + stats0 + i0, rows);
      __syncthreads();

      // Thread (ty, tx) scores keys ty + 16 * j against queries tx + 16 * r.
      float s[R][R], dp[R][R];
#pragma unroll
      for (int j = 0; j < R; ++j)
#pragma unroll
        for (int r = 0; r < R; ++r) s[j][r] = dp[j][r] = 0.0f;
#pragma unroll 4
      for (int d = 0; d < DK; ++d) {
        float kd[R], qd[R];
#pragma unroll
        for (int j = 0; j < R; ++j) kd[j] = k_tile[(ty + kGrid * j) * KP + d];
#pragma unroll
        for (int r = 0; r < R; ++r) qd[r] = q_tile[(tx + kGrid * r) * KP + d];
#pragma unroll
        for (int j = 0; j < R; ++j)
#pragma unroll
          for (int r = 0; r < R; ++r) s[j][r] = fmaf(kd[j], qd[r], s[j][r]);
      }
#pragma unroll 4
      for (int d = 0; d < DV; ++d) {
        float vd[R], gd[R];
#pragma unroll
        for (int j = 0; j < R; ++j) vd[j] = v_tile[(ty + kGrid * j) * VP + d];
#pragma unroll
        for (int r = 0; r < R; ++r) gd[r] = g_tile[(tx + kGrid * r) * VP + d];
#pragma unroll
        for (int j = 0; j < R; ++j)
#pragma unroll
          for (int r = 0; r < R; ++r) dp[j][r] = fmaf(vd[j], gd[r], dp[j][r]);
      }
#pragma unroll
      for (int j = 0; j < R; ++j) {
        const int key = ty + kGrid * j;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int query = tx + kGrid * r;
          const bool allowed = key < keys && query < rows && (full || head_allows(mask, i0 + query, k0 + key));
          const float p = allowed ? expf(args.scale * s[j][r] - lse_tile[query]) : 0.0f;
          p_tile[key * TP + query] = p;
          ds_tile[key * TP + query] = p * (dp[j][r] - delta_tile[query]);
        }
      }
      __syncthreads();

#pragma unroll 4
      for (int query = 0; query < TILE; ++query) {
        float gd[CV], qd[CK];
#pragma unroll
        for (int c = 0; c < CV; ++c) gd[c] = g_tile[query * VP + tx + kGrid * c];
#pragma unroll
        for (int c = 0; c < CK; ++c) qd[c] = q_tile[query * KP + tx + kGrid * c];
#pragma unroll
        for (int j = 0; j < R; ++j) {
          const float p = p_tile[(ty + kGrid * j) * TP + query];
          const float ds = ds_tile[(ty + kGrid * j) * TP + query];
#pragma unroll
          for (int c = 0; c < CV; ++c) dv[j][c] = fmaf(p, gd[c], dv[j][c]);
#pragma unroll
          for (int c = 0; c < CK; ++c) dk[j][c] = fmaf(ds, qd[c], dk[j][c]);
        }
      }
    }
  }

#pragma unroll
  for (int j = 0; j < R; ++j) {
    const int key = ty + kGrid * j;
    if (key >= keys) continue;
    Scalar* dk_row = args.dk + (batch_row0 + k0 + key) * args.k_stride + int64_t{h} * DK;
    Scalar* dv_row = args.dv + (batch_row0 + k0 + key) * args.v_stride + int64_t{h} * DV;
#pragma unroll
    for (int c = 0; c < CK; ++c) store_f32(dk_row + tx + kGrid * c, args.scale * dk[j][c]);
#pragma unroll
    for (int c = 0; c < CV; ++c) store_f32(dv_row + tx + kGrid * c, dv[j][c]);
  }
}

template <int DK, int DV, int TILE, typename Scalar>
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(LayoutView layout, BackwardArgs<Scalar> args) {
  constexpr int R = TILE / kGrid;  // queries (and keys) per thread
  constexpr int C = DK / kGrid;    // dQ columns per thread
  constexpr int KP = DK + 1;
  constexpr int VP = DV + 1;
  constexpr int TP = TILE + 1;
  extern __shared__ float smem[];
  float* q_tile = smem;                   // (TILE, KP)
  float* g_tile = q_tile + TILE * KP;     // (TILE, VP) dout
  float* k_tile = g_tile + TILE * VP;     // (TILE, KP)
  float* v_tile = k_tile + TILE * KP;     // (TILE, VP)
  float* ds_tile = v_tile + TILE * VP;    // (TILE, TP) row = query
  float* lse_tile = ds_tile + TILE * TP;  // (TILE)
  float* delta_tile = lse_tile + TILE;    // (TILE)

  const int T = layout.T;
  const int h = blockIdx.y, b = blockIdx.z, H = gridDim.y;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * TILE;  // the longest rows start first
  const int rows = min(TILE, T - q0);
  const int tx = threadIdx.x % kGrid, ty = threadIdx.x / kGrid;
  const DeviceHeadMask mask = layout.masks[h];
  const int64_t batch_row0 = int64_t{b} * T;
  const int64_t stats0 = (int64_t{b} * H + h) * T;

  load_tile<DK, TILE>(q_tile, args.q + (batch_row0 + q0) * args.q_stride + int64_t{h} * DK, args.q_stride, rows);
  load_tile<DV, TILE>(g_tile, args.dout + (batch_row0 + q0) * args.out_stride + int64_t{h} * DV, args.out_stride,
                      rows);
  load_row_stats<TILE>(lse_tile, delta_tile, args.lse + stats0 + q0, args.delta + stats0 + q0, rows);

  float dq[R][C];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < C; ++c) dq[r][c] = 0.0f;

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
      __syncthreads();  // the previous tile's readers are done (and the first loads landed)
      load_tile<DK, TILE>(k_tile, args.k + (batch_row0 + k0) * args.k_stride + int64_t{h} * DK, args.k_stride, keys);
      load_tile<DV, TILE>(v_tile, args.v + (batch_row0 + k0) * args.v_stride + int64_t{h} * DV, args.v_stride, keys);
      __syncthreads();

      // Thread (ty, tx) scores queries ty + 16 * r against keys tx + 16 * j.
      float s[R][R], dp[R][R];
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < R; ++j) s[r][j] = dp[r][j] = 0.0f;
#pragma unroll 4
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
#pragma unroll 4
      for (int d = 0; d < DV; ++d) {
        float gd[R], vd[R];
#pragma unroll
        for (int r = 0; r < R; ++r) gd[r] = g_tile[(ty + kGrid * r) * VP + d];
#pragma unroll
        for (int j = 0; j < R; ++j) vd[j] = v_tile[(tx + kGrid * j) * VP + d];
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int j = 0; j < R; ++j) dp[r][j] = fmaf(gd[r], vd[j], dp[r][j]);
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int query = ty + kGrid * r;
#pragma unroll
        for (int j = 0; j < R; ++j) {
          const int key = tx + kGrid * j;
          const bool allowed = key < keys && query < rows && (full || head_allows(mask, q0 + query, k0 + key));
          const float p = allowed ? expf(args.scale * s[r][j] - lse_tile[query]) : 0.0f;
          ds_tile[query * TP + key] = p * (dp[r][j] - delta_tile[query]);
        }
      }
      __syncthreads();

#pragma unroll 4
      for (int key = 0; key < TILE; ++key) {
        float kd[C];
#pragma unroll
        for (int c = 0; c < C; ++c) kd[c] = k_tile[key * KP + tx + kGrid * c];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float ds = ds_tile[(ty + kGrid * r) * TP + key];
#pragma unroll
          for (int c = 0; c < C; ++c) dq[r][c] = fmaf(ds, kd[c], dq[r][c]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int query = ty + kGrid * r;
    if (query >= rows) continue;
    Scalar* dq_row = args.dq + (batch_row0 + q0 + query) * args.q_stride + int64_t{h} * DK;
#pragma unroll
    for (int c = 0; c < C; ++c) store_f32(dq_row + tx + kGrid * c, args.scale * dq[r][c]);
  }
}

template <int DK, int DV, int TILE, typename Scalar>
void launch_gradients(const LaunchGeometry& g, const LayoutView& layout, const BackwardArgs<Scalar>& args) {
  const auto dkdv = attention_dkdv_kernel<DK, DV, TILE, Scalar>;
  const size_t dkdv_smem = sizeof(float) * dkdv_smem_floats<DK, DV, TILE>();
  prepare_kernel(reinterpret_cast<const void*>(dkdv), dkdv_smem);
  dkdv<<<g.grid(TILE), kThreads, dkdv_smem, g.stream>>>(layout, args);
  SPT_CUDA_CHECK(cudaGetLastError());

  const auto dq = attention_dq_kernel<DK, DV, TILE, Scalar>;
  const size_t dq_smem = sizeof(float) * dq_smem_floats<DK, DV, TILE>();
  prepare_kernel(reinterpret_cast<const void*>(dq), dq_smem);
  dq<<<g.grid(TILE), kThreads, dq_smem, g.stream>>>(layout, args);
  SPT_CUDA_CHECK(cudaGetLastError());
}

// Both gradient kernels of one element type, at the call's tile and head dims.
template <typename Scalar>
void simt_gradients(const LaunchGeometry& g, const LayoutView& layout, const BackwardArgs<Scalar>& args) {
  dispatch_tile_and_dims(g.tile, g.shape.Dk, g.shape.Dv, [&](auto tile, auto dk, auto dv) {
    launch_gradients<decltype(dk)::value, decltype(dv)::value, decltype(tile)::value, Scalar>(g, layout, args);
  });
}

extern template void simt_gradients<float>(const LaunchGeometry&, const LayoutView&, const BackwardArgs<float>&);
extern template void simt_gradients<__nv_bfloat16>(const LaunchGeometry&, const LayoutView&,
                                                    const BackwardArgs<__nv_bfloat16>&);
extern template void simt_gradients<__half>(const LaunchGeometry&, const LayoutView&, const BackwardArgs<__half>&);

}  // namespace spt::cuda::detail
