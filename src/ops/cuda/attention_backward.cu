// Sparse causal attention backward (SIMT, fp32 math; the fp32 path and the fallback of the
// tensor-core kernels in attention_tc_backward.cu), in three deterministic kernels:
//   delta  rowsum(dout * out) per (b, h, t), eight threads per row;
//   dK/dV  one thread block per (b, h, key tile) walks the query blocks that its key block
//          lists (transposed layout) and owns its dK, dV rows: no atomics;
//   dQ     one thread block per (b, h, query tile) walks the key blocks of its row list.
// Both gradient kernels recompute P = exp(scale * q.k - lse) tile by tile; nothing of
// size T x T is stored.
#include <cmath>
#include <cstdint>

#include "core/cuda_check.h"
#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/attention_launch.h"
#include "ops/cuda/op_common.cuh"

namespace spt::cuda::detail {
namespace {

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

constexpr int kDeltaLanes = 8;   // threads per (b, t, h) row
constexpr int kDeltaRows = 32;   // rows of one head per block: consecutive t

// delta (B, H, T) = rowsum(dout * out) per (b, h, t). Block (kDeltaLanes, kDeltaRows) takes
// kDeltaRows positions of one (b, h) (blockIdx.y); each lane reads 16 bytes at a time when
// `vector` (row start and D aligned to them), the lanes' sums meet by shuffles in a fixed order.
template <typename Scalar>
__global__ void attention_delta_kernel(const Scalar* out, const Scalar* dout, int64_t out_stride, int T, int H, int D,
                                       bool vector, float* delta) {
  constexpr int kVector = ops::kVector<Scalar>;
  const int lane = threadIdx.x, bh = blockIdx.y;
  const int t = blockIdx.x * kDeltaRows + threadIdx.y;
  const int b = bh / H, h = bh % H;
  const int64_t at = (int64_t{b} * T + t) * out_stride + int64_t{h} * D;
  const Scalar* o = out + at;
  const Scalar* g = dout + at;
  const int columns = t < T ? D : 0;  // rows past the end add nothing but still shuffle
  float sum = 0.0f;
  if (vector) {
    for (int c = lane * kVector; c < columns; c += kDeltaLanes * kVector) {
      float ov[kVector], gv[kVector];
      ops::load_vector(o + c, ov);
      ops::load_vector(g + c, gv);
#pragma unroll
      for (int j = 0; j < kVector; ++j) sum = fmaf(ov[j], gv[j], sum);
    }
  } else {
    for (int c = lane; c < columns; c += kDeltaLanes) sum = fmaf(to_float(o[c]), to_float(g[c]), sum);
  }
#pragma unroll
  for (int offset = kDeltaLanes / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0 && t < T) delta[int64_t{bh} * T + t] = sum;
}

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

template <typename Scalar>
void launch_delta(const LaunchGeometry& g, const void* out, const void* dout, float* delta) {
  const AttentionShape& s = g.shape;
  SPT_CHECK(int64_t{s.B} * s.H <= 65535, "attention backward: B * H = ", int64_t{s.B} * s.H,
            " exceeds 65,535: split the batch");
  constexpr size_t kVectorBytes = 16;
  const bool vector = (s.Dv * sizeof(Scalar)) % kVectorBytes == 0 && (s.out_stride * sizeof(Scalar)) % kVectorBytes == 0 &&
                      reinterpret_cast<uintptr_t>(out) % kVectorBytes == 0 &&
                      reinterpret_cast<uintptr_t>(dout) % kVectorBytes == 0;
  const dim3 grid(static_cast<unsigned>((s.T + kDeltaRows - 1) / kDeltaRows), static_cast<unsigned>(s.B * s.H));
  attention_delta_kernel<Scalar><<<grid, dim3(kDeltaLanes, kDeltaRows), 0, g.stream>>>(
      static_cast<const Scalar*>(out), static_cast<const Scalar*>(dout), s.out_stride, static_cast<int>(s.T), s.H,
      s.Dv, vector, delta);
  SPT_CUDA_CHECK(cudaGetLastError());
}

template <typename Scalar>
void run(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
         const void* v, const void* out, const float* lse, const void* dout, float* delta, void* dq, void* dk,
         void* dv) {
  const AttentionShape& s = g.shape;
  launch_delta<Scalar>(g, out, dout, delta);
  if (g.tensor_cores) {
    backward_tc(g, layout, dtype, q, k, v, lse, dout, delta, dq, dk, dv);
    return;
  }
  const BackwardArgs<Scalar> args{static_cast<const Scalar*>(q), static_cast<const Scalar*>(k),
                                  static_cast<const Scalar*>(v), static_cast<const Scalar*>(dout),
                                  lse, delta, static_cast<Scalar*>(dq), static_cast<Scalar*>(dk),
                                  static_cast<Scalar*>(dv), s.q_stride, s.k_stride, s.v_stride, s.out_stride,
                                  g.scale};
  dispatch_tile_and_dims(g.tile, s.Dk, s.Dv, [&](auto tile, auto dk, auto dv) {
    launch_gradients<decltype(dk)::value, decltype(dv)::value, decltype(tile)::value, Scalar>(g, layout, args);
  });
}

}  // namespace

void attention_delta(const LaunchGeometry& g, DType dtype, const void* out, const void* dout, float* delta) {
  switch (dtype) {
    case DType::f32: return launch_delta<float>(g, out, dout, delta);
    case DType::bf16: return launch_delta<__nv_bfloat16>(g, out, dout, delta);
    case DType::f16: return launch_delta<__half>(g, out, dout, delta);
  }
}

void backward(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
              const void* v, const void* out, const float* lse, const void* dout, float* delta, void* dq, void* dk,
              void* dv) {
  switch (dtype) {
    case DType::f32: return run<float>(g, layout, dtype, q, k, v, out, lse, dout, delta, dq, dk, dv);
    case DType::bf16: return run<__nv_bfloat16>(g, layout, dtype, q, k, v, out, lse, dout, delta, dq, dk, dv);
    case DType::f16: return run<__half>(g, layout, dtype, q, k, v, out, lse, dout, delta, dq, dk, dv);
  }
}

}  // namespace spt::cuda::detail
