// Pattern-specific tensor-core attention backward (bf16 / fp16, fp32 accumulation), after
// delta = rowsum(dout * out); the parts and views are described in attention_fast.cuh.
// Every part takes the final lse and delta, so the parts' gradients simply add:
//   dQ    columns (strided A2, group query tiles) -> fp32 dq_part; then main (natural query
//         tiles: A1 key tiles, then fixed's summary key tiles) writes dq = own + dq_part.
//   dK/dV summary (fixed A2: compacted key tiles, their later queries split into `slices`
//         CTAs) or columns (strided A2: group key tiles) -> fp32 dk_part / dv_part; then main
//         (natural key tiles, A1 queries) writes dk, dv = own + the parts of that key.
// Deterministic (plan.deterministic, or steps without kFusedDq): no atomics, each output
// element is written by one thread and summed in a fixed order. Otherwise (wgmma, D 64) the
// summary and main dK/dV kernels also produce dQ: each key tile's share of a query tile's dQ
// goes into the fp32 dq_accum through a bulk reduction (TMA), so the dQ pass of the natural
// queries is skipped (5 products per tile pair instead of 7); a last kernel writes
// dq = scale dq_accum + dq_part. The order of those fp32 additions varies from run to run.
// The loop bodies are those of attention_tc_backward.cu.
#include <cmath>

#include "core/cuda_check.h"
#include "ops/cuda/attention_fast.cuh"
#include "ops/cuda/attention_fast_launch.h"
#include "ops/cuda/attention_tc_tiles.cuh"

namespace spt::cuda::detail {
namespace {

using namespace tc;
using fast::Head;
using fast::View;

enum KeyPart : int { kPartMain = 0, kPartSummary = 1, kPartColumns = 2 };

template <typename Scalar>
struct FastBackwardArgs {
  const Scalar* q;     // (B, T, q_stride), head h at column h * D
  const Scalar* k;     // (B, T, k_stride)
  const Scalar* v;     // (B, T, v_stride)
  const Scalar* dout;  // (B, T, out_stride)
  const float* lse;    // (B, H, T)
  const float* delta;  // (B, H, T)
  Scalar* dq;          // (B, T, q_stride)
  Scalar* dk;          // (B, T, k_stride)
  Scalar* dv;          // (B, T, v_stride)
  float* dq_part;      // (B, H, T, D)
  float* dq_accum;     // (B, H, query tiles, 64 * D) fused dQ before the scale, each tile in accumulator order
  float* dk_part;      // columns (B, H, T, D); summary (slices, B, H, summary_keys, D)
  float* dv_part;
  int64_t q_stride, k_stride, v_stride, out_stride;
  float scale;       // 1 / sqrt(D)
  float scale_log2;  // log2(e) / sqrt(D)
  int B, H, T;
  int group_tiles;
  int slices;
  int summary_keys;
  int query_tiles;  // natural query tiles: ceil(T / 64)
  bool vector_io;
};

template <int D, typename Scalar, bool kColumns>
__global__ void __launch_bounds__(tc::kThreads) fast_dq_kernel(const DeviceHeadMask* masks,
                                                                FastBackwardArgs<Scalar> args) {
  using S = fast::StepsFor<D, Scalar>;
  constexpr int NO = D / 8;
  constexpr int NS = kTile / 8;
  constexpr int kTileElements = S::kTileElements;
  extern __shared__ __align__(16) unsigned char smem[];
  Scalar* q_s = fast::first_tile<S, Scalar>(smem);  // (64, D) tile
  Scalar* g_s = q_s + kTileElements;                // dout tile
  Scalar* k_s = g_s + kTileElements;                // (2) tiles
  Scalar* v_s = k_s + 2 * kTileElements;            // (2) tiles

  const int T = args.T;
  const fast::QueryTile qt = fast::query_tile<kColumns>(masks, args.B, args.H, T, args.group_tiles);
  if (!qt.active) return;
  const int b = qt.b, h = qt.h, bh = qt.bh, xq0 = qt.xq0;
  const Head& head = qt.head;
  const View& queries = qt.queries;
  fast::KeyParts parts = fast::key_parts<kColumns>(qt);
  const View& keys0 = parts.keys0;
  const View& keys1 = parts.keys1;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t column = int64_t{h} * D;
  const int64_t stats0 = int64_t{bh} * T;
  const Scalar* k_base = args.k + int64_t{b} * T * args.k_stride + column;
  const Scalar* v_base = args.v + int64_t{b} * T * args.v_stride + column;

  const fast::TileSource<Scalar> query_rows[2] = {
      {q_s, args.q + int64_t{b} * T * args.q_stride + column, args.q_stride},
      {g_s, args.dout + int64_t{b} * T * args.out_stride + column, args.out_stride}};
  fast::load_view_tiles<D, S>(query_rows, queries, xq0, args.vector_io);
  auto load_kv = [&](int stage, int part, int x0) {
    const View view = fast::pick(part == 0, keys0, keys1);
    const fast::TileSource<Scalar> rows[2] = {{k_s + stage * kTileElements, k_base, args.k_stride},
                                              {v_s + stage * kTileElements, v_base, args.v_stride}};
    fast::load_view_tiles<D, S>(rows, view, x0, args.vector_io);
  };
  int part = 0, x0 = 0;
  bool have = parts.tiles.next(part, x0);
  if (have) load_kv(0, part, x0);
  cp_async_commit();

  float lse2[2], delta[2];
  int position[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int x = xq0 + 16 * warp + lane / 4 + 8 * r;
    const bool valid = x < queries.count;
    position[r] = valid ? queries.position(x) : -1;
    lse2[r] = valid ? tc::lse_log2(args.lse[stats0 + position[r]]) : 0.0f;
    delta[r] = valid ? args.delta[stats0 + position[r]] : 0.0f;
  }
  cp_async_wait_all();
  S::smem_ready();
  __syncthreads();

  float dq[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;

  int stage = 0;
  while (have) {
    int part_next, x0_next;
    const bool have_next = fast::start_step(parts.tiles, stage, part_next, x0_next, load_kv);

    const Scalar* ks = k_s + stage * kTileElements;
    const Scalar* vs = v_s + stage * kTileElements;
    float s[NS][4], dp[NS][4];
    S::scores_and_dp(s, dp, q_s, g_s, ks, vs, warp, lane);
    fast::mask_part<kColumns>(s, qt, parts, part, x0, warp);
    accumulate_dq<D, Scalar, S>(dq, dp, s, lse2, delta, args.scale_log2, ks, lane);

    fast::finish_step<S>(stage, part, x0, have, part_next, x0_next, have_next);
  }

  const int t = lane % 4;
  const bool add_part = !kColumns && head.kind == kStrided && head.a2;
  // dq = scale dq (+ the column part): every load before the first store (see fast_dkdv_kernel).
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = position[r];
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      dq[n][2 * r] *= args.scale;
      dq[n][2 * r + 1] *= args.scale;
    }
    if (i < 0 || !add_part) continue;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      const float2 p = *reinterpret_cast<const float2*>(args.dq_part + (stats0 + i) * D + 8 * n + 2 * t);
      dq[n][2 * r] += p.x;
      dq[n][2 * r + 1] += p.y;
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = position[r];
    if (i < 0) continue;
    if constexpr (kColumns) {
      float* part = args.dq_part + (stats0 + i) * D;
#pragma unroll
      for (int n = 0; n < NO; ++n)
        *reinterpret_cast<float2*>(part + 8 * n + 2 * t) = make_float2(dq[n][2 * r], dq[n][2 * r + 1]);
    } else {
      Scalar* dq_row = args.dq + (int64_t{b} * T + i) * args.q_stride + column;
#pragma unroll
      for (int n = 0; n < NO; ++n) store_pair(dq_row + 8 * n + 2 * t, dq[n][2 * r], dq[n][2 * r + 1], args.vector_io);
    }
  }
}

template <int D, typename Scalar, int kPart, bool kFusedDq>
__global__ void __launch_bounds__(tc::kThreads, kFusedDq ? fast::StepsFor<D, Scalar>::kFusedBlocks
                                                          : fast::StepsFor<D, Scalar>::kDkdvBlocks)
    fast_dkdv_kernel(const DeviceHeadMask* masks, FastBackwardArgs<Scalar> args) {
  using S = fast::StepsFor<D, Scalar>;
  static_assert(!kFusedDq || (S::kFusedDq && kPart != kPartColumns), "dQ fuses only over natural query tiles");
  constexpr int NO = D / 8;
  constexpr int kChunk = S::kDkdvChunk;
  constexpr int NC = kChunk / 8;
  constexpr int kRule = kPart == kPartMain ? fast::kRuleA1 : kPart == kPartSummary ? fast::kRuleSummary
                                                                                    : fast::kRuleColumn;
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kTileElements = S::kTileElements;
  Scalar* k_s = fast::first_tile<S, Scalar>(smem);                    // (64, D) tile
  Scalar* v_s = k_s + kTileElements;                                  // tile
  Scalar* q_s = v_s + kTileElements;                                  // (2) tiles
  Scalar* g_s = q_s + 2 * kTileElements;                              // (2) dout tiles
  Scalar* ds_s = g_s + 2 * kTileElements;                             // fused: dS^T tile (keys x queries)
  float* dq_s = reinterpret_cast<float*>(ds_s + (kFusedDq ? kTileElements : 0));  // fused: (64 * D) dQ share
  float* lse_s = dq_s + (kFusedDq ? kTile * D : 0);                   // (2, 64) log2 domain
  float* delta_s = lse_s + 2 * kTile;                                 // (2, 64)

  const int T = args.T;
  const int bh = blockIdx.x % (args.B * args.H);
  const int rank = blockIdx.x / (args.B * args.H);
  const int b = bh / args.H, h = bh % args.H;
  const Head head = fast::make_head(masks[h], T);
  View keys = fast::natural_view(head);
  View queries = fast::natural_view(head);
  int xk0 = rank * kTile, slice = 0;
  if constexpr (kPart == kPartSummary) {
    if (!head.a2) return;
    keys = fast::summary_view(head);
    xk0 = (rank / args.slices) * kTile;
    slice = rank % args.slices;
  } else if constexpr (kPart == kPartColumns) {
    if (!head.a2) return;
    keys = queries = fast::group_view(head, rank % head.l);
    xk0 = (rank / head.l) * kTile;
  }
  if (xk0 >= keys.count) return;
  const int xk_last = min(xk0 + kTile, keys.count) - 1;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t column = int64_t{h} * D;
  const int64_t stats0 = int64_t{bh} * T;
  const Scalar* q_base = args.q + int64_t{b} * T * args.q_stride + column;
  const Scalar* g_base = args.dout + int64_t{b} * T * args.out_stride + column;

  const fast::TileSource<Scalar> key_rows[2] = {
      {k_s, args.k + int64_t{b} * T * args.k_stride + column, args.k_stride},
      {v_s, args.v + int64_t{b} * T * args.v_stride + column, args.v_stride}};
  fast::load_view_tiles<D, S>(key_rows, keys, xk0, args.vector_io);

  fast::PartTiles tiles{};
  tiles.begin[0] = tiles.end[0] = tiles.begin[1] = tiles.end[1] = 0;
  if (kPart != kPartMain || head.a1) {
    fast::query_range<kRule>(head, keys, queries, xk0, xk_last, tiles.begin[0], tiles.end[0]);
    if (kPart == kPartSummary && args.slices > 1) {
      const int n = max(0, (tiles.end[0] - tiles.begin[0] + kTile - 1) / kTile);
      const int first = tiles.begin[0];
      tiles.begin[0] = first + static_cast<int>(int64_t{n} * slice / args.slices) * kTile;
      tiles.end[0] = min(tiles.end[0], first + static_cast<int>(int64_t{n} * (slice + 1) / args.slices) * kTile);
    }
  }
  tiles.start();
  // A query tile's rows and row statistics start copying into shared memory (no warp waits
  // for them before the step's products); after the copy, finish_stats turns each lse into
  // the log2 domain (rows past the view's end arrive as 0, which stays 0).
  auto load_queries = [&](int stage, int x0) {
    const fast::TileSource<Scalar> rows[2] = {{q_s + stage * kTileElements, q_base, args.q_stride},
                                              {g_s + stage * kTileElements, g_base, args.out_stride}};
    fast::load_view_tiles<D, S>(rows, queries, x0, args.vector_io);
    if (threadIdx.x < kTile) {
      const int x = x0 + threadIdx.x;
      const bool valid = x < queries.count;
      const int64_t at = stats0 + (valid ? queries.position(x) : 0);
      tc::cp_async_4(lse_s + stage * kTile + threadIdx.x, args.lse + at, valid ? 4 : 0);
      tc::cp_async_4(delta_s + stage * kTile + threadIdx.x, args.delta + at, valid ? 4 : 0);
    }
  };
  // After cp_async_wait_all(), by the threads that copied; visible after the next barrier.
  auto finish_stats = [&](int stage) {
    if (threadIdx.x < kTile) lse_s[stage * kTile + threadIdx.x] = tc::lse_log2(lse_s[stage * kTile + threadIdx.x]);
  };
  float dk[NO][4], dv[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.0f;
  const int t = lane % 4;

  int part = 0, x0 = 0;
  bool have = tiles.next(part, x0);
  if (have) load_queries(0, x0);
  cp_async_commit();
  cp_async_wait_all();
  if (have) finish_stats(0);
  S::smem_ready();
  __syncthreads();

  int stage = 0;
  while (have) {
    int part_next = 0, x0_next = 0;
    const bool have_next = tiles.next(part_next, x0_next);
    if (have_next) load_queries(stage ^ 1, x0_next);
    cp_async_commit();

    const Scalar* qs = q_s + stage * kTileElements;
    const Scalar* gs = g_s + stage * kTileElements;
    const float* lse2 = lse_s + stage * kTile;
    const float* delta = delta_s + stage * kTile;
    const bool masked = !fast::tile_full<kRule>(head, keys, x0, xk0);
    if constexpr (kFusedDq) {
      const auto mask = [&](auto& scores) {
        if (masked) fast::mask_tile<kRule, false>(scores, head, keys, xk0 + 16 * warp, x0);
      };
      // dq_s was sent at the end of the last tile; the barrier in dkdv_dq_issue tells every
      // thread that it has been read.
      if (threadIdx.x == 0) wg::bulk_wait_read();
      float s[8][4], dp[8][4], dq[NO][4];
      S::issue_score_pair(s, k_s, qs, dp, v_s, gs);
      S::complete(s, dp);
      S::dkdv_dq_issue(dk, dv, dq, s, dp, ds_s, k_s, qs, gs, lse2, delta, args.scale_log2, warp, lane, mask);
      S::complete(dq);
      // Accumulator order: conflict-free, undone by fast_dq_finish_kernel; sent after the barrier below.
      float4* dq4 = reinterpret_cast<float4*>(dq_s);
#pragma unroll
      for (int n = 0; n < NO; ++n)
        dq4[n * tc::kThreads + threadIdx.x] = make_float4(dq[n][0], dq[n][1], dq[n][2], dq[n][3]);
    } else {
#pragma unroll 1
      for (int qc = 0; qc < kTile; qc += kChunk) {
        // S^T = K Q^T for this warp's 16 keys and the chunk's queries, then the gradients.
        const auto mask = [&](auto& scores) {
          if (masked) fast::mask_tile<kRule, false>(scores, head, keys, xk0 + 16 * warp, x0 + qc);
        };
        S::template dkdv_step<NC>(dk, dv, k_s, v_s, qs, gs, lse2, delta, args.scale_log2, warp, lane, qc, mask);
      }
    }

    cp_async_wait_all();
    if (have_next) finish_stats(stage ^ 1);
    S::smem_ready();
    __syncthreads();
    if constexpr (kFusedDq) {
      if (threadIdx.x == 0)
        wg::bulk_reduce_add(args.dq_accum + (int64_t{bh} * args.query_tiles + x0 / kTile) * kTile * D,
                            dq_s, sizeof(float) * kTile * D);
    }
    stage ^= 1;
    x0 = x0_next;
    have = have_next;
  }
  if constexpr (kFusedDq) {
    if (threadIdx.x == 0) wg::bulk_wait();
  }

  const int64_t bhs = int64_t{args.B} * args.H;
  if constexpr (kPart == kPartMain) {
    // dk = scale dk + the other part's share of the key, dv likewise: each goes through shared
    // memory (the free query tiles) as an fp32 tile, then whole rows are read back, the parts
    // added and the rows written with 16-byte stores.
    constexpr int kPitch = D + 8;  // floats per staged row: a half warp's float2 writes hit distinct banks
    static_assert(sizeof(float) * kTile * kPitch <= sizeof(Scalar) * 4 * kTileElements, "staging tile too large");
    float* tile_s = reinterpret_cast<float*>(q_s);  // (kTile, kPitch)
    constexpr int kGroups = D / 8;                  // 8 columns per thread and step
#pragma unroll
    for (int pass = 0; pass < 2; ++pass) {
      const float mul = pass == 0 ? args.scale : 1.0f;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float* row = tile_s + (16 * warp + lane / 4 + 8 * r) * kPitch + 2 * t;
#pragma unroll
        for (int n = 0; n < NO; ++n) {
          const float y0 = pass == 0 ? dk[n][2 * r] : dv[n][2 * r];
          const float y1 = pass == 0 ? dk[n][2 * r + 1] : dv[n][2 * r + 1];
          *reinterpret_cast<float2*>(row + 8 * n) = make_float2(y0 * mul, y1 * mul);
        }
      }
      __syncthreads();
      const float* part_base = pass == 0 ? args.dk_part : args.dv_part;
      Scalar* out_base = pass == 0 ? args.dk : args.dv;
      const int64_t out_stride = pass == 0 ? args.k_stride : args.v_stride;
      for (int e = threadIdx.x; e < kTile * kGroups; e += tc::kThreads) {
        const int rr = e / kGroups, col = 8 * (e % kGroups);
        const int x = xk0 + rr;
        if (x > xk_last) continue;
        float y[8];
        load_eight(tile_s + rr * kPitch + col, y);
        const float* add = nullptr;
        int count = 0;
        int64_t step = 0;
        if (head.a2 && head.kind == kStrided) {
          add = part_base + (stats0 + x) * D + col;
          count = 1;
        } else if (head.a2 && head.kind == kFixed) {
          const int block = head.by_l.div(x), xm = x - block * head.l;
          if (xm >= head.lo && xm < head.lo + head.c) {
            add = part_base + (int64_t{bh} * args.summary_keys + block * head.c + xm - head.lo) * D + col;
            count = args.slices;
            step = bhs * args.summary_keys * D;
          }
        }
        for (int sl = 0; sl < count; ++sl) {
          float p[8];
          load_eight(add + sl * step, p);
#pragma unroll
          for (int j = 0; j < 8; ++j) y[j] += p[j];
        }
        store_eight(out_base + (int64_t{b} * T + x) * out_stride + column + col, y, args.vector_io);
      }
      __syncthreads();
    }
  } else {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int x = xk0 + 16 * warp + lane / 4 + 8 * r;
      if (x > xk_last) continue;
      const int64_t at = kPart == kPartSummary ? ((slice * bhs + bh) * args.summary_keys + x) * D
                                               : (stats0 + keys.position(x)) * D;
#pragma unroll
      for (int n = 0; n < NO; ++n) {
        *reinterpret_cast<float2*>(args.dk_part + at + 8 * n + 2 * t) =
            make_float2(args.scale * dk[n][2 * r], args.scale * dk[n][2 * r + 1]);
        *reinterpret_cast<float2*>(args.dv_part + at + 8 * n + 2 * t) = make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
      }
    }
  }
}

// Fused dQ: dq = scale dq_accum (+ dq_part for strided heads with A2), one block per 64-row
// query tile. A tile of dq_accum holds thread u's fragment n at float4 n * 128 + u (rows
// 16 (u / 32) + (u % 32) / 4 and 8 more, columns 8 n + 2 (u % 4) and the next): the block reads
// it in that order into a row-major tile in shared memory, then writes whole rows of dq.
constexpr int kFinishThreads = 256;

template <int D, typename Scalar>
__global__ void __launch_bounds__(kFinishThreads)
    fast_dq_finish_kernel(const DeviceHeadMask* masks, FastBackwardArgs<Scalar> args) {
  constexpr int NO = D / 8;
  constexpr int kPitch = D + 8;  // floats per staged row: a half warp's float2 writes (4 rows) hit distinct banks
  __shared__ __align__(16) float tile_s[kTile * kPitch];  // (kTile, kPitch)
  const int64_t tile = blockIdx.x;  // bh * query_tiles + query tile
  const int bh = static_cast<int>(tile / args.query_tiles);
  const int b = bh / args.H, h = bh % args.H;
  const int row0 = static_cast<int>(tile % args.query_tiles) * kTile;
  const float4* accum = reinterpret_cast<const float4*>(args.dq_accum) + tile * (NO * tc::kThreads);
#pragma unroll
  for (int i = threadIdx.x; i < NO * tc::kThreads; i += kFinishThreads) {
    const float4 sum = accum[i];
    const int u = i % tc::kThreads, n = i / tc::kThreads;
    float* at = tile_s + (16 * (u / 32) + (u % 32) / 4) * kPitch + 8 * n + 2 * (u % 4);
    *reinterpret_cast<float2*>(at) = make_float2(sum.x, sum.y);
    *reinterpret_cast<float2*>(at + 8 * kPitch) = make_float2(sum.z, sum.w);
  }
  __syncthreads();
  const bool add_part = masks[h].kind == kStrided && masks[h].use_a2;
  constexpr int kGroups = D / 8;  // 8 columns per thread and step
#pragma unroll
  for (int e = threadIdx.x; e < kTile * kGroups; e += kFinishThreads) {
    const int r = e / kGroups, col = 8 * (e % kGroups);
    const int i = row0 + r;
    if (i >= args.T) continue;
    float y[8];
    load_eight(tile_s + r * kPitch + col, y);
#pragma unroll
    for (int j = 0; j < 8; ++j) y[j] *= args.scale;
    if (add_part) {
      float part[8];
      load_eight(args.dq_part + (int64_t{bh} * args.T + i) * D + col, part);
#pragma unroll
      for (int j = 0; j < 8; ++j) y[j] += part[j];
    }
    store_eight(args.dq + (int64_t{b} * args.T + i) * args.q_stride + int64_t{h} * D + col, y, args.vector_io);
  }
}

template <int D, typename Scalar>
void launch_all(const FastLaunch& g, const FastBackwardArgs<Scalar>& args) {
  using S = fast::StepsFor<D, Scalar>;
  const size_t dq_smem = fast::tiles_bytes<S, Scalar>(6);
  const size_t dkdv_smem = fast::tiles_bytes<S, Scalar>(6, sizeof(float) * 4 * kTile);
  const size_t fused_smem = fast::tiles_bytes<S, Scalar>(7, sizeof(float) * (4 * kTile + kTile * D));
  const cudaStream_t stream = g.geometry.stream;
  auto go = [&](auto kernel, size_t smem, int64_t ranks) {
    if (ranks == 0) return;  // a part with no rows (a context shorter than its first summary column)
    prepare_kernel(reinterpret_cast<const void*>(kernel), smem);
    kernel<<<fast_grid(g, ranks), tc::kThreads, smem, stream>>>(g.masks, args);
    SPT_CUDA_CHECK(cudaGetLastError());
  };
  const int64_t column_ranks = int64_t{g.parts.stride} * g.group_tiles();
  if (g.parts.columns) {
    go(fast_dq_kernel<D, Scalar, true>, dq_smem, column_ranks);
    go(fast_dkdv_kernel<D, Scalar, kPartColumns, false>, dkdv_smem, column_ranks);
  }
  if constexpr (S::kFusedDq) {
    if (g.accumulate_dq) {
      const int64_t floats = int64_t{args.B} * args.H * args.query_tiles * kTile * D;
      SPT_CUDA_CHECK(cudaMemsetAsync(args.dq_accum, 0, sizeof(float) * floats, stream));
      if (g.parts.summary_part)
        go(fast_dkdv_kernel<D, Scalar, kPartSummary, true>, fused_smem, g.summary_tiles() * g.slices);
      go(fast_dkdv_kernel<D, Scalar, kPartMain, true>, fused_smem, g.natural_tiles());
      const int64_t tiles = int64_t{args.B} * args.H * args.query_tiles;
      fast_dq_finish_kernel<D, Scalar><<<static_cast<unsigned>(tiles), kFinishThreads, 0, stream>>>(g.masks, args);
      SPT_CUDA_CHECK(cudaGetLastError());
      return;
    }
  }
  if (g.parts.summary_part)
    go(fast_dkdv_kernel<D, Scalar, kPartSummary, false>, dkdv_smem, g.summary_tiles() * g.slices);
  go(fast_dq_kernel<D, Scalar, false>, dq_smem, g.natural_tiles());
  go(fast_dkdv_kernel<D, Scalar, kPartMain, false>, dkdv_smem, g.natural_tiles());
}

template <typename Scalar>
void run(const FastLaunch& g, const void* q, const void* k, const void* v, const float* lse, const void* dout,
         const float* delta, void* dq, void* dk, void* dv, const FastScratch& scratch) {
  const AttentionShape& s = g.geometry.shape;
  const FastBackwardArgs<Scalar> args{static_cast<const Scalar*>(q),
                                      static_cast<const Scalar*>(k),
                                      static_cast<const Scalar*>(v),
                                      static_cast<const Scalar*>(dout),
                                      lse,
                                      delta,
                                      static_cast<Scalar*>(dq),
                                      static_cast<Scalar*>(dk),
                                      static_cast<Scalar*>(dv),
                                      scratch.dq_part,
                                      scratch.dq_accum,
                                      scratch.dk_part,
                                      scratch.dv_part,
                                      s.q_stride,
                                      s.k_stride,
                                      s.v_stride,
                                      s.out_stride,
                                      g.geometry.scale,
                                      g.geometry.scale * kLog2e,
                                      s.B,
                                      s.H,
                                      static_cast<int>(s.T),
                                      static_cast<int>(g.group_tiles()),
                                      g.slices,
                                      g.parts.summary_keys,
                                      static_cast<int>(g.natural_tiles()),
                                      rows_vector_aligned({q, k, v, dout, dq, dk, dv},
                                                          {s.q_stride, s.k_stride, s.v_stride, s.out_stride})};
  switch (s.Dk) {
    case 32: return launch_all<32>(g, args);
    case 64: return launch_all<64>(g, args);
    default: return launch_all<128>(g, args);
  }
}

}  // namespace

bool fast_accumulates_dq(int D) { return fast::StepsFor<64, __nv_bfloat16>::kFusedDq && D == 64; }

void backward_fast(const FastLaunch& g, DType dtype, const void* q, const void* k, const void* v, const float* lse,
                   const void* dout, const float* delta, void* dq, void* dk, void* dv, const FastScratch& scratch) {
  if (dtype == DType::bf16)
    run<__nv_bfloat16>(g, q, k, v, lse, dout, delta, dq, dk, dv, scratch);
  else
    run<__half>(g, q, k, v, lse, dout, delta, dq, dk, dv, scratch);
}

}  // namespace spt::cuda::detail
