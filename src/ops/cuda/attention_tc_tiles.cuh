// The per-warp tile steps shared by every tensor-core attention kernel (the block-layout ones
// in attention_tc_*.cu and the pattern-specific ones in attention_fast_*.cu). A warp owns 16
// rows of a 64-row tile; shared-memory tiles are (64, D + 8) as in attention_tc.cuh. The
// kernels differ only in which tiles they visit and how they mask them.
#pragma once

#include "ops/cuda/attention_tc.cuh"

namespace spt::cuda::detail::tc {

constexpr int kScoreTiles = kTile / 8;  // n-tiles of 8 keys in a 64-key tile

// acc += A X for this warp's 16 rows: A (16 x 8 N) from score-shaped accumulators a_acc, X the
// rows [row0, row0 + 8 N) of a (64, P) tile, all D columns: P V, dS K, P^T dO or dS^T Q.
template <int D, typename Scalar, int N>
__device__ __forceinline__ void accumulate_product(float (&acc)[D / 8][4], const float (&a_acc)[N][4],
                                                   const Scalar* tile, int lane, int row0) {
  constexpr int P = pitch<D>();
#pragma unroll
  for (int kk = 0; kk < N / 2; ++kk) {
    uint32_t a[4];
    accumulator_to_a<Scalar>(a, a_acc, kk);
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, tile + bt_offset<P>(lane, row0 + 16 * kk, 16 * dp));
      mma<Scalar>(acc[2 * dp], a, b[0], b[1]);
      mma<Scalar>(acc[2 * dp + 1], a, b[2], b[3]);
    }
  }
}

// s = Q K^T for this warp's 16 query rows (A fragments q_frag) and the 64 keys of ks.
template <int D, typename Scalar>
__device__ __forceinline__ void query_key_scores(float (&s)[kScoreTiles][4], const uint32_t (&q_frag)[D / 16][4],
                                                 const Scalar* ks, int lane) {
  constexpr int P = pitch<D>();
#pragma unroll
  for (int n = 0; n < kScoreTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
    for (int np = 0; np < kScoreTiles / 2; ++np) {
      uint32_t b[4];
      ldmatrix_x4(b, ks + b_offset<P>(lane, 16 * np, 16 * kk));
      mma<Scalar>(s[2 * np], q_frag[kk], b[0], b[1]);
      mma<Scalar>(s[2 * np + 1], q_frag[kk], b[2], b[3]);
    }
}

// lse in the log2 domain for the exp2 recomputation. A row with no allowed key (lse = -inf)
// only meets masked pairs; 0 keeps its masked entries at exp2(-inf) = 0 instead of NaN.
__device__ __forceinline__ float lse_log2(float lse) { return lse == -INFINITY ? 0.0f : lse * kLog2e; }

// One tile of the online softmax: scales the scores (masked ones -inf) into the log2 domain,
// updates each of the thread's two rows' running maximum and sum, rescales the output
// accumulators, and leaves exp2(score - max) in s. A row that has seen no allowed key keeps
// maximum -inf; shifting by 0 then keeps exp2(-inf) at 0 instead of NaN.
// The running maximum only moves when some row of the warp gains more than kMaxSlack (log2
// domain) on it: below that the kept one is exact all the same (sums and outputs share it,
// and the lse is max + log2 sum), the weights stay below 2^kMaxSlack, and the warp skips the
// output rescale, which on long rows is most tiles. Only up to head dim 64: at 128 the
// mma.sync forward measured slower with it (docs/BENCHMARKS.md, sixth pass).
constexpr float kMaxSlack = 8.0f;

template <int NO>
__device__ __forceinline__ void online_softmax(float (&s)[kScoreTiles][4], float (&o)[NO][4], float (&row_max)[2],
                                               float (&row_sum)[2], float scale_log2) {
  constexpr bool kLazyMax = NO <= 8;  // head dim up to 64
  // The maximum of the raw scores (scale_log2 > 0), scaled once: each entry then takes one
  // fused multiply-add before exp2.
  float new_max[2];
  bool grows = false;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float tile_max = fmaxf(s[0][2 * r], s[0][2 * r + 1]);
#pragma unroll
    for (int n = 1; n < kScoreTiles; ++n) tile_max = fmaxf(tile_max, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    new_max[r] = fmaxf(row_max[r], tile_max * scale_log2);
    grows |= new_max[r] > row_max[r] + kMaxSlack;  // always when row_max is -inf and a key is allowed
  }
  const bool rescale_rows = !kLazyMax || __any_sync(0xffffffffu, grows);
  float tile_sum[2], old_max[2], shift[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    old_max[r] = row_max[r];
    if (rescale_rows) row_max[r] = new_max[r];
    shift[r] = row_max[r] == -INFINITY ? 0.0f : row_max[r];
    tile_sum[r] = 0.0f;
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
      s[n][2 * r] = exp2_ftz(fmaf(s[n][2 * r], scale_log2, -shift[r]));
      s[n][2 * r + 1] = exp2_ftz(fmaf(s[n][2 * r + 1], scale_log2, -shift[r]));
      tile_sum[r] += s[n][2 * r] + s[n][2 * r + 1];
    }
  }
  if (rescale_rows) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float rescale = exp2_ftz(old_max[r] - shift[r]);
      row_sum[r] = row_sum[r] * rescale + tile_sum[r];
#pragma unroll
      for (int n = 0; n < NO; ++n) {
        o[n][2 * r] *= rescale;
        o[n][2 * r + 1] *= rescale;
      }
    }
  } else {
    row_sum[0] += tile_sum[0];
    row_sum[1] += tile_sum[1];
  }
}

// o += P V for this warp's rows: P from the score accumulators, vs the 64 values' tile.
template <int D, typename Scalar>
__device__ __forceinline__ void accumulate_pv(float (&o)[D / 8][4], const float (&p)[kScoreTiles][4],
                                              const Scalar* vs, int lane) {
  accumulate_product<D, Scalar>(o, p, vs, lane, 0);
}

// dQ pass: s = Q K^T and dp = dO V^T for this warp's 16 query rows of q_s and g_s (dout).
template <int D, typename Scalar>
__device__ __forceinline__ void query_scores_and_dp(float (&s)[kScoreTiles][4], float (&dp)[kScoreTiles][4],
                                                    const Scalar* q_s, const Scalar* g_s, const Scalar* ks,
                                                    const Scalar* vs, int warp, int lane) {
  constexpr int P = pitch<D>();
#pragma unroll
  for (int n = 0; n < kScoreTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4], ga[4];
    ldmatrix_x4(a, q_s + a_offset<P>(lane, 16 * warp, 16 * kk));
    ldmatrix_x4(ga, g_s + a_offset<P>(lane, 16 * warp, 16 * kk));
#pragma unroll
    for (int np = 0; np < kScoreTiles / 2; ++np) {
      uint32_t b[4];
      ldmatrix_x4(b, ks + b_offset<P>(lane, 16 * np, 16 * kk));
      mma<Scalar>(s[2 * np], a, b[0], b[1]);
      mma<Scalar>(s[2 * np + 1], a, b[2], b[3]);
      ldmatrix_x4(b, vs + b_offset<P>(lane, 16 * np, 16 * kk));
      mma<Scalar>(dp[2 * np], ga, b[0], b[1]);
      mma<Scalar>(dp[2 * np + 1], ga, b[2], b[3]);
    }
  }
}

// dK/dV pass: queries per step, bounded by registers.
template <int D>
__host__ __device__ constexpr int dkdv_chunk() {
  return D == 128 ? 16 : D == 64 ? 32 : 64;
}

// dK/dV pass: acc = R C^T for this warp's 16 rows of tile `rows` (keys, or values) and the
// chunk's queries [qc, qc + NC * 8) of tile `cols` (queries, or dout): S^T or dP^T.
template <int D, typename Scalar, int NC>
__device__ __forceinline__ void key_query_products(float (&acc)[NC][4], const Scalar* rows, const Scalar* cols,
                                                   int warp, int lane, int qc) {
  constexpr int P = pitch<D>();
#pragma unroll
  for (int n = 0; n < NC; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    ldmatrix_x4(a, rows + a_offset<P>(lane, 16 * warp, 16 * kk));
#pragma unroll
    for (int np = 0; np < NC / 2; ++np) {
      uint32_t b[4];
      ldmatrix_x4(b, cols + b_offset<P>(lane, qc + 16 * np, 16 * kk));
      mma<Scalar>(acc[2 * np], a, b[0], b[1]);
      mma<Scalar>(acc[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// dK/dV pass: P^T = exp2(s scale - lse2) in place, s the masked S^T of the chunk's queries
// [qc, qc + 8 NC); lse2 holds the tile's 64 query rows (log2 domain) in shared memory.
template <int NC>
__device__ __forceinline__ void probabilities_t(float (&s)[NC][4], const float* lse2, float scale_log2, int lane,
                                                int qc) {
  const int t = lane % 4;
#pragma unroll
  for (int n = 0; n < NC; ++n) {
    const float2 l2 = *reinterpret_cast<const float2*>(lse2 + qc + 8 * n + 2 * t);  // this thread's two queries
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const float l = c == 0 ? l2.x : l2.y;
      s[n][c] = exp2_ftz(fmaf(s[n][c], scale_log2, -l));
      s[n][2 + c] = exp2_ftz(fmaf(s[n][2 + c], scale_log2, -l));
    }
  }
}

// dK/dV pass: dS^T = P^T (dP^T - delta) in place of dp_t; delta as lse2.
template <int NC>
__device__ __forceinline__ void scores_gradient_t(float (&dp_t)[NC][4], const float (&p)[NC][4], const float* delta,
                                                  int lane, int qc) {
  const int t = lane % 4;
#pragma unroll
  for (int n = 0; n < NC; ++n) {
    const float2 d2 = *reinterpret_cast<const float2*>(delta + qc + 8 * n + 2 * t);
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const float d = c == 0 ? d2.x : d2.y;
      dp_t[n][c] = p[n][c] * (dp_t[n][c] - d);
      dp_t[n][2 + c] = p[n][2 + c] * (dp_t[n][2 + c] - d);
    }
  }
}

// dK/dV pass, after the scores s = S^T of one chunk are masked: P^T in place; dv += P^T dO;
// dP^T = V dO^T; dS^T; dk += dS^T Q (the scale is applied once at the end).
template <int D, typename Scalar, int NC>
__device__ __forceinline__ void accumulate_dkdv(float (&dk)[D / 8][4], float (&dv)[D / 8][4], float (&s)[NC][4],
                                                const Scalar* v_s, const Scalar* qs, const Scalar* gs,
                                                const float* lse2, const float* delta, float scale_log2, int warp,
                                                int lane, int qc) {
  probabilities_t(s, lse2, scale_log2, lane, qc);
  accumulate_product<D, Scalar, NC>(dv, s, gs, lane, qc);
  float dp_t[NC][4];
  key_query_products<D, Scalar, NC>(dp_t, v_s, gs, warp, lane, qc);
  scores_gradient_t(dp_t, s, delta, lane, qc);
  accumulate_product<D, Scalar, NC>(dk, dp_t, qs, lane, qc);
}

// The tile steps of the padded layout with mma.sync, as a policy: the pattern-specific kernels
// take either these or wg::Steps (attention_wgmma.cuh), which have the same interface.
template <int D, typename Scalar>
struct Steps {
  static constexpr int kTileElements = tile_elements<D>();
  static constexpr int kAlignBytes = 16;
  // forward warpgroups per multiprocessor to size registers for (1: no bound)
  static constexpr int kForwardBlocks = 1;
  static constexpr int kForwardGroups = 1;  // forward warpgroups per CTA
  // dK/dV CTAs per multiprocessor to size registers for
  static constexpr int kDkdvBlocks = 1;
  static constexpr int kDkdvChunk = dkdv_chunk<D>();
  static constexpr bool kFusedDq = false;  // dQ comes from its own pass
  static constexpr int kFusedBlocks = 1;

  __device__ static int offset(int r, int col) { return r * pitch<D>() + col; }
  __device__ static void smem_ready() {}

  // The warp's 16 query rows as A fragments, loaded once per query tile.
  struct QueryFragments {
    uint32_t a[D / 16][4];
  };
  __device__ static void load_queries(QueryFragments& q, const Scalar* q_s, int warp, int lane) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4(q.a[kk], q_s + a_offset<pitch<D>()>(lane, 16 * warp, 16 * kk));
  }
  __device__ static void scores(float (&s)[kScoreTiles][4], const QueryFragments& q, const Scalar* /*q_s*/,
                                const Scalar* ks, int lane) {
    query_key_scores<D, Scalar>(s, q.a, ks, lane);
  }
  __device__ static void scores_and_dp(float (&s)[kScoreTiles][4], float (&dp)[kScoreTiles][4], const Scalar* q_s,
                                       const Scalar* g_s, const Scalar* ks, const Scalar* vs, int warp, int lane) {
    query_scores_and_dp<D, Scalar>(s, dp, q_s, g_s, ks, vs, warp, lane);
  }
  template <int N>
  __device__ static void product(float (&acc)[D / 8][4], const float (&a_acc)[N][4], const Scalar* tile, int lane,
                                 int row0) {
    accumulate_product<D, Scalar, N>(acc, a_acc, tile, lane, row0);
  }
  // One dK/dV step: the chunk [qc, qc + 8 NC) of the query tile qs (dout gs) against the
  // warp's 16 keys of k_s, v_s; mask(s) refuses pairs of S^T.
  template <int NC, typename Mask>
  __device__ static void dkdv_step(float (&dk)[D / 8][4], float (&dv)[D / 8][4], const Scalar* k_s,
                                    const Scalar* v_s, const Scalar* qs, const Scalar* gs, const float* lse2,
                                    const float* delta, float scale_log2, int warp, int lane, int qc,
                                    const Mask& mask) {
    float s[NC][4];
    key_query_products<D, Scalar, NC>(s, k_s, qs, warp, lane, qc);
    mask(s);
    accumulate_dkdv<D, Scalar, NC>(dk, dv, s, v_s, qs, gs, lse2, delta, scale_log2, warp, lane, qc);
  }
};

// dQ pass: dS = P (dP - delta) in place of dp, P recomputed from the masked scores s and the
// rows' lse in the log2 domain; then dq += dS K (the scale is applied once at the end).
template <int D, typename Scalar, typename S = Steps<D, Scalar>>
__device__ __forceinline__ void accumulate_dq(float (&dq)[D / 8][4], float (&dp)[kScoreTiles][4],
                                              const float (&s)[kScoreTiles][4], const float (&lse2)[2],
                                              const float (&delta)[2], float scale_log2, const Scalar* ks, int lane) {
#pragma unroll
  for (int n = 0; n < kScoreTiles; ++n)
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const float p = exp2_ftz(fmaf(s[n][2 * r + c], scale_log2, -lse2[r]));
        dp[n][2 * r + c] = p * (dp[n][2 * r + c] - delta[r]);
      }
  S::template product<kScoreTiles>(dq, dp, ks, lane, 0);
}

}  // namespace spt::cuda::detail::tc
