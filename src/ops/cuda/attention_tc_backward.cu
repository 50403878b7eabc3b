// Tensor-core sparse attention backward (bf16 / fp16, fp32 accumulation), two deterministic
// kernels after delta = rowsum(dout * out):
//   dK/dV  one CTA per (64-key tile, batch row, head) walks the query tiles of its key
//          block's column list; each warp owns 16 keys and their dK, dV rows in registers;
//   dQ     one CTA per (64-query tile, batch row, head) walks the key tiles of its row list.
// Both recompute P = exp2(scale log2e q.k - lse log2e) from q, k and lse; no T x T buffer and
// no atomics. Query (dK/dV) or key (dQ) tiles are double-buffered with cp.async.
#include <cmath>

#include "core/cuda_check.h"
#include "ops/cuda/attention_launch.h"
#include "ops/cuda/attention_tc.cuh"
#include "ops/cuda/attention_tc_tiles.cuh"

namespace spt::cuda::detail {
namespace {

using namespace tc;

template <typename Scalar>
struct TcBackwardArgs {
  const Scalar* q;     // (B, T, q_stride), head h at column h * D
  const Scalar* k;     // (B, T, k_stride)
  const Scalar* v;     // (B, T, v_stride)
  const Scalar* dout;  // (B, T, out_stride)
  const float* lse;    // (B, H, T)
  const float* delta;  // (B, H, T)
  Scalar* dq;          // (B, T, q_stride)
  Scalar* dk;          // (B, T, k_stride)
  Scalar* dv;          // (B, T, v_stride)
  int64_t q_stride, k_stride, v_stride, out_stride;
  float scale;       // 1 / sqrt(D)
  float scale_log2;  // log2(e) / sqrt(D)
  int B, H;
  bool vector_io;  // every row 16-byte aligned: cp.async loads and paired stores
};

// lse[at] in the log2 domain (tc::lse_log2); rows past T (zero q and dout) take 0 for both
// lse and delta, so they add nothing.
__device__ __forceinline__ float lse_log2(const float* lse, int64_t at, bool in_range) {
  return in_range ? tc::lse_log2(lse[at]) : 0.0f;
}

template <int D, typename Scalar>
__global__ void __launch_bounds__(tc::kThreads) tc_dkdv_kernel(LayoutView layout, TcBackwardArgs<Scalar> args) {
  constexpr int P = pitch<D>();
  constexpr int NO = D / 8;
  constexpr int kChunk = dkdv_chunk<D>();
  constexpr int NC = kChunk / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  Scalar* k_s = reinterpret_cast<Scalar*>(smem);             // (64, P)
  Scalar* v_s = k_s + tile_elements<D>();                    // (64, P)
  Scalar* q_s = v_s + tile_elements<D>();                    // (2, 64, P)
  Scalar* g_s = q_s + 2 * tile_elements<D>();                // (2, 64, P) dout
  float* lse_s = reinterpret_cast<float*>(g_s + 2 * tile_elements<D>());  // (2, 64) log2 domain
  float* delta_s = lse_s + 2 * kTile;                                     // (2, 64)

  const int T = layout.T;
  const TileIndex at = tile_index(args.B, args.H);
  const int k0 = at.rank * kTile;  // early keys meet the most queries and start first
  const int h = at.h;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const DeviceHeadMask mask = layout.masks[h];
  const int64_t row0 = int64_t{at.b} * T;
  const int64_t column = int64_t{h} * D;
  const int64_t stats0 = (int64_t{at.b} * args.H + h) * T;

  const int keys = min(kTile, T - k0);
  load_tile<D>(k_s, args.k + (row0 + k0) * args.k_stride + column, args.k_stride, keys, args.vector_io);
  load_tile<D>(v_s, args.v + (row0 + k0) * args.v_stride + column, args.v_stride, keys, args.vector_io);
  const int64_t list = int64_t{h} * layout.blocks + k0 / layout.block;
  QueryTiles query_tiles{layout.col_begin[list], layout.col_begin[list + 1], 0, k0};
  int i0 = 0;
  bool full = false;
  bool have = query_tiles.next(layout, i0, full);
  auto load_queries = [&](int stage, int start) {
    const int rows = min(kTile, T - start);
    load_tile<D>(q_s + stage * tile_elements<D>(), args.q + (row0 + start) * args.q_stride + column, args.q_stride,
                 rows, args.vector_io);
    load_tile<D>(g_s + stage * tile_elements<D>(), args.dout + (row0 + start) * args.out_stride + column,
                 args.out_stride, rows, args.vector_io);
    if (threadIdx.x < kTile) {
      const int r = threadIdx.x;
      lse_s[stage * kTile + r] = lse_log2(args.lse, stats0 + start + r, r < rows);
      delta_s[stage * kTile + r] = r < rows ? args.delta[stats0 + start + r] : 0.0f;
    }
  };
  if (have) load_queries(0, i0);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();

  float dk[NO][4], dv[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.0f;
  const FragmentRows rows = fragment_rows(mask, k0 + 16 * warp);  // this warp's keys
  const int t = lane % 4;

  int stage = 0;
  while (have) {
    int i0_next = 0;
    bool full_next = false;
    const bool have_next = query_tiles.next(layout, i0_next, full_next);
    if (have_next) load_queries(stage ^ 1, i0_next);
    cp_async_commit();

    const Scalar* qs = q_s + stage * tile_elements<D>();
    const Scalar* gs = g_s + stage * tile_elements<D>();
    const float* lse2 = lse_s + stage * kTile;
    const float* delta = delta_s + stage * kTile;
    const bool masked = !full || i0 + kTile > T;

#pragma unroll 1
    for (int qc = 0; qc < kTile; qc += kChunk) {
      // S^T = K Q^T for this warp's 16 keys and the chunk's queries, then the gradients.
      float s[NC][4];
      key_query_products<D, Scalar>(s, k_s, qs, warp, lane, qc);
      if (masked) apply_mask<false>(s, mask, rows, i0 + qc);
      accumulate_dkdv<D, Scalar>(dk, dv, s, v_s, qs, gs, lse2, delta, args.scale_log2, warp, lane, qc);
    }

    cp_async_wait_all();
    __syncthreads();  // the next stage landed; this stage's readers are done before it is refilled
    stage ^= 1;
    i0 = i0_next;
    full = full_next;
    have = have_next;
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = rows.index[r];
    if (key >= T) continue;
    Scalar* dk_row = args.dk + (row0 + key) * args.k_stride + column;
    Scalar* dv_row = args.dv + (row0 + key) * args.v_stride + column;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      store_pair(dk_row + 8 * n + 2 * t, args.scale * dk[n][2 * r], args.scale * dk[n][2 * r + 1], args.vector_io);
      store_pair(dv_row + 8 * n + 2 * t, dv[n][2 * r], dv[n][2 * r + 1], args.vector_io);
    }
  }
}

template <int D, typename Scalar>
__global__ void __launch_bounds__(tc::kThreads) tc_dq_kernel(LayoutView layout, TcBackwardArgs<Scalar> args) {
  constexpr int P = pitch<D>();
  constexpr int NO = D / 8;
  constexpr int NS = kTile / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  Scalar* q_s = reinterpret_cast<Scalar*>(smem);  // (64, P)
  Scalar* g_s = q_s + tile_elements<D>();         // (64, P) dout
  Scalar* k_s = g_s + tile_elements<D>();         // (2, 64, P)
  Scalar* v_s = k_s + 2 * tile_elements<D>();     // (2, 64, P)

  const int T = layout.T;
  const int tiles = (T + kTile - 1) / kTile;
  const TileIndex at = tile_index(args.B, args.H);
  const int q0 = (tiles - 1 - at.rank) * kTile;  // the longest rows of a causal pattern first
  const int h = at.h;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const DeviceHeadMask mask = layout.masks[h];
  const int64_t row0 = int64_t{at.b} * T;
  const int64_t column = int64_t{h} * D;
  const int64_t stats0 = (int64_t{at.b} * args.H + h) * T;

  const int rows_in_tile = min(kTile, T - q0);
  load_tile<D>(q_s, args.q + (row0 + q0) * args.q_stride + column, args.q_stride, rows_in_tile, args.vector_io);
  load_tile<D>(g_s, args.dout + (row0 + q0) * args.out_stride + column, args.out_stride, rows_in_tile,
               args.vector_io);
  const int64_t list = int64_t{h} * layout.blocks + q0 / layout.block;
  KeyTiles key_tiles{layout.row_begin[list], layout.row_begin[list + 1], 0, q0 + kTile - 1};
  int k0 = 0;
  bool full = false;
  bool have = key_tiles.next(layout, k0, full);
  auto load_kv = [&](int stage, int start) {
    const int keys = min(kTile, T - start);
    load_tile<D>(k_s + stage * tile_elements<D>(), args.k + (row0 + start) * args.k_stride + column, args.k_stride,
                 keys, args.vector_io);
    load_tile<D>(v_s + stage * tile_elements<D>(), args.v + (row0 + start) * args.v_stride + column, args.v_stride,
                 keys, args.vector_io);
  };
  if (have) load_kv(0, k0);
  cp_async_commit();

  const FragmentRows rows = fragment_rows(mask, q0 + 16 * warp);
  float lse2[2], delta[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const bool in_range = rows.index[r] < T;
    lse2[r] = lse_log2(args.lse, stats0 + rows.index[r], in_range);
    delta[r] = in_range ? args.delta[stats0 + rows.index[r]] : 0.0f;
  }
  cp_async_wait_all();
  __syncthreads();

  float dq[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;

  int stage = 0;
  while (have) {
    int k0_next = 0;
    bool full_next = false;
    const bool have_next = key_tiles.next(layout, k0_next, full_next);
    if (have_next) load_kv(stage ^ 1, k0_next);
    cp_async_commit();

    const Scalar* ks = k_s + stage * tile_elements<D>();
    const Scalar* vs = v_s + stage * tile_elements<D>();
    float s[NS][4], dp[NS][4];
    query_scores_and_dp<D>(s, dp, q_s, g_s, ks, vs, warp, lane);
    if (!full || k0 + kTile > T) apply_mask<true>(s, mask, rows, k0);
    accumulate_dq<D>(dq, dp, s, lse2, delta, args.scale_log2, ks, lane);

    cp_async_wait_all();
    __syncthreads();  // the next stage landed; this stage's readers are done before it is refilled
    stage ^= 1;
    k0 = k0_next;
    full = full_next;
    have = have_next;
  }

  const int t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = rows.index[r];
    if (i >= T) continue;
    Scalar* dq_row = args.dq + (row0 + i) * args.q_stride + column;
#pragma unroll
    for (int n = 0; n < NO; ++n)
      store_pair(dq_row + 8 * n + 2 * t, args.scale * dq[n][2 * r], args.scale * dq[n][2 * r + 1], args.vector_io);
  }
}

template <int D, typename Scalar>
void launch(const LaunchGeometry& g, const LayoutView& layout, const TcBackwardArgs<Scalar>& args) {
  const auto dkdv = tc_dkdv_kernel<D, Scalar>;
  const size_t dkdv_smem = sizeof(Scalar) * 6 * tile_elements<D>() + sizeof(float) * 4 * kTile;
  prepare_kernel(reinterpret_cast<const void*>(dkdv), dkdv_smem);
  dkdv<<<tc_grid(g), tc::kThreads, dkdv_smem, g.stream>>>(layout, args);
  SPT_CUDA_CHECK(cudaGetLastError());

  const auto dq = tc_dq_kernel<D, Scalar>;
  const size_t dq_smem = sizeof(Scalar) * 6 * tile_elements<D>();
  prepare_kernel(reinterpret_cast<const void*>(dq), dq_smem);
  dq<<<tc_grid(g), tc::kThreads, dq_smem, g.stream>>>(layout, args);
  SPT_CUDA_CHECK(cudaGetLastError());
}

template <typename Scalar>
void run(const LaunchGeometry& g, const LayoutView& layout, const void* q, const void* k, const void* v,
         const float* lse, const void* dout, const float* delta, void* dq, void* dk, void* dv) {
  const AttentionShape& s = g.shape;
  const bool vector_io = rows_vector_aligned({q, k, v, dout, dq, dk, dv},
                                             {s.q_stride, s.k_stride, s.v_stride, s.out_stride});
  const TcBackwardArgs<Scalar> args{static_cast<const Scalar*>(q),
                                    static_cast<const Scalar*>(k),
                                    static_cast<const Scalar*>(v),
                                    static_cast<const Scalar*>(dout),
                                    lse,
                                    delta,
                                    static_cast<Scalar*>(dq),
                                    static_cast<Scalar*>(dk),
                                    static_cast<Scalar*>(dv),
                                    s.q_stride,
                                    s.k_stride,
                                    s.v_stride,
                                    s.out_stride,
                                    g.scale,
                                    g.scale * kLog2e,
                                    s.B,
                                    s.H,
                                    vector_io};
  switch (s.Dk) {
    case 32: return launch<32>(g, layout, args);
    case 64: return launch<64>(g, layout, args);
    default: return launch<128>(g, layout, args);
  }
}

}  // namespace

void backward_tc(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
                 const void* v, const float* lse, const void* dout, const float* delta, void* dq, void* dk, void* dv) {
  if (dtype == DType::bf16)
    run<__nv_bfloat16>(g, layout, q, k, v, lse, dout, delta, dq, dk, dv);
  else
    run<__half>(g, layout, q, k, v, lse, dout, delta, dq, dk, dv);
}

}  // namespace spt::cuda::detail
