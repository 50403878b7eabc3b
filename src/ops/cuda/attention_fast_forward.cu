// Pattern-specific tensor-core attention forward (bf16 / fp16, fp32 accumulation and
// statistics); the parts and views are described in attention_fast.cuh.
//   main     one CTA per (64-query tile of the natural order, batch row, head): the A1 key
//            tiles, then (fixed) the compacted summary key tiles, in one online softmax;
//            for strided heads with A2 it then merges the column part computed before.
//   columns  strided heads with A2, one CTA per (64-query tile of residue group r, r, batch
//            row, head): the group's earlier keys, written as an fp32 partial result
//            (normalized output and log2-sum-exp) at the queries' positions.
// The loop body is the one of attention_tc_forward.cu: 4 warps of 16 query rows,
// double-buffered key/value tiles through cp.async, exp2 softmax. The main kernel runs
// S::kForwardGroups such warpgroups per CTA on consecutive 64-row query tiles, sharing each
// key/value tile; a warpgroup skips the key tiles that none of its rows meets.
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

template <typename Scalar>
struct FastForwardArgs {
  const Scalar* q;  // (B, T, q_stride), head h at column h * D
  const Scalar* k;  // (B, T, k_stride)
  const Scalar* v;  // (B, T, v_stride)
  Scalar* out;      // (B, T, out_stride)
  float* lse;       // (B, H, T)
  float* part_o;    // (B, H, T, D) columns part, normalized; null when no head has it
  float* part_lse;  // (B, H, T) its log2-sum-exp (-inf: no key)
  int64_t q_stride, k_stride, v_stride, out_stride;
  float scale_log2;  // log2(e) / sqrt(D)
  int B, H, T;
  int group_tiles;  // columns: query tiles per residue group
  bool vector_io;
};

template <int D, typename Scalar, bool kColumns, int kGroups>
__global__ void __launch_bounds__(tc::kThreads * kGroups,
                                  fast::StepsFor<D, Scalar>::kForwardBlocks / kGroups > 1
                                      ? fast::StepsFor<D, Scalar>::kForwardBlocks / kGroups
                                      : 1)
    fast_forward_kernel(const DeviceHeadMask* masks, FastForwardArgs<Scalar> args) {
  using S = fast::StepsFor<D, Scalar>;
  constexpr int NO = D / 8;
  constexpr int NS = kTile / 8;
  constexpr int kTileElements = S::kTileElements;
  constexpr int kRows = kTile * kGroups;            // query rows per CTA
  constexpr int kLoaders = tc::kThreads * kGroups;  // every thread loads
  extern __shared__ __align__(16) unsigned char smem[];
  Scalar* q_s = fast::first_tile<S, Scalar>(smem);  // (kGroups) tiles: (kRows, D)
  Scalar* k_s = q_s + kGroups * kTileElements;      // (2) tiles
  Scalar* v_s = k_s + 2 * kTileElements;            // (2) tiles

  const int T = args.T;
  const fast::QueryTile cta = fast::query_tile<kColumns, kRows>(masks, args.B, args.H, T, args.group_tiles);
  if (!cta.active) return;
  const int b = cta.b, h = cta.h, bh = cta.bh;
  const Head& head = cta.head;
  const View& queries = cta.queries;
  fast::KeyParts parts = fast::key_parts<kColumns, kRows>(cta);
  const View& keys0 = parts.keys0;
  const View& keys1 = parts.keys1;

  // This warpgroup's 64 rows and the key tiles they meet.
  const int group = threadIdx.x / tc::kThreads;
  fast::QueryTile qt = cta;
  qt.xq0 = cta.xq0 + kTile * group;
  const int xq0 = qt.xq0;
  const bool rows_valid = xq0 < queries.count;
  const fast::PartTiles own = fast::key_parts<kColumns>(qt).tiles;

  const int warp = threadIdx.x % tc::kThreads / 32, lane = threadIdx.x % 32;
  const int64_t column = int64_t{h} * D;
  const Scalar* q_base = args.q + int64_t{b} * T * args.q_stride + column;
  const Scalar* k_base = args.k + int64_t{b} * T * args.k_stride + column;
  const Scalar* v_base = args.v + int64_t{b} * T * args.v_stride + column;

  fast::load_view_tile<D, S, kRows, kLoaders>(q_s, q_base, args.q_stride, queries, cta.xq0, args.vector_io);
  Scalar* const my_q = q_s + group * kTileElements;
  auto load_kv = [&](int stage, int part, int x0) {
    const View view = fast::pick(part == 0, keys0, keys1);
    const fast::TileSource<Scalar> rows[2] = {{k_s + stage * kTileElements, k_base, args.k_stride},
                                              {v_s + stage * kTileElements, v_base, args.v_stride}};
    fast::load_view_tiles<D, S, kTile, kLoaders>(rows, view, x0, args.vector_io);
  };
  int part = 0, x0 = 0;
  bool have = parts.tiles.next(part, x0);
  if (have) load_kv(0, part, x0);
  cp_async_commit();
  cp_async_wait_all();
  S::smem_ready();
  __syncthreads();

  typename S::QueryFragments q_frag;
  S::load_queries(q_frag, my_q, warp, lane);

  float o[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};  // log2 domain
  float row_sum[2] = {0.0f, 0.0f};            // this thread's columns only, summed over the quad at the end

  int stage = 0;
  while (have) {
    int part_next, x0_next;
    const bool have_next = fast::start_step(parts.tiles, stage, part_next, x0_next, load_kv);

    const bool mine = part == 0 ? x0 >= own.begin[0] && x0 < own.end[0] : x0 >= own.begin[1] && x0 < own.end[1];
    if (rows_valid && mine) {
      const Scalar* ks = k_s + stage * kTileElements;
      const Scalar* vs = v_s + stage * kTileElements;
      float s[NS][4];
      S::scores(s, q_frag, my_q, ks, lane);
      fast::mask_part<kColumns>(s, qt, parts, part, x0, warp);
      online_softmax(s, o, row_max, row_sum, args.scale_log2);
      S::template product<NS>(o, s, vs, lane, 0);
    }

    fast::finish_step<S>(stage, part, x0, have, part_next, x0_next, have_next);
  }

  const int t = lane % 4;
  const int64_t stats0 = int64_t{bh} * T;
  const bool merge = !kColumns && head.kind == kStrided && head.a2;
  // Natural queries: the output rows are merged in registers first and stored after, so that
  // no load of the other part waits behind a store that could alias it.
  int position[2] = {-1, -1};
  float lse_total[2] = {0.0f, 0.0f};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int x = xq0 + 16 * warp + lane / 4 + 8 * r;
    if (x >= queries.count) continue;
    const int i = queries.position(x);
    const float own_lse = sum == 0.0f ? -INFINITY : row_max[r] + log2f(sum);  // log2 domain
    if constexpr (kColumns) {
      const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
      float* part = args.part_o + (stats0 + i) * D;
#pragma unroll
      for (int n = 0; n < NO; ++n)
        *reinterpret_cast<float2*>(part + 8 * n + 2 * t) = make_float2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
      if (t == 0) args.part_lse[stats0 + i] = own_lse;
    } else {
      // Weights of this CTA's unnormalized sums and of the other part's normalized output.
      float total = own_lse, own_weight = sum == 0.0f ? 0.0f : 1.0f / sum, other_weight = 0.0f;
      const float* other = nullptr;
      if (merge) {
        const float other_lse = args.part_lse[stats0 + i];
        const float m = fmaxf(own_lse, other_lse);
        if (m != -INFINITY) {
          total = m + log2f(exp2f(own_lse - m) + exp2f(other_lse - m));
          own_weight = sum == 0.0f ? 0.0f : exp2f(row_max[r] - total);
          other_weight = exp2f(other_lse - total);
          other = args.part_o + (stats0 + i) * D;
        }
      }
#pragma unroll
      for (int n = 0; n < NO; ++n) {
        o[n][2 * r] *= own_weight;
        o[n][2 * r + 1] *= own_weight;
        if (other != nullptr) {
          const float2 p = *reinterpret_cast<const float2*>(other + 8 * n + 2 * t);
          o[n][2 * r] = fmaf(p.x, other_weight, o[n][2 * r]);
          o[n][2 * r + 1] = fmaf(p.y, other_weight, o[n][2 * r + 1]);
        }
      }
      position[r] = i;
      lse_total[r] = total;
    }
  }
  if constexpr (!kColumns) {
    // The rows go through shared memory (the key/value tiles, free after the loop's last
    // barrier), each warpgroup its own (64, kPitch) tile, and out as whole rows of 16-byte stores.
    constexpr int kPitch = D + 8;  // elements per staged row: a warp's 4-byte writes hit distinct banks
    static_assert(kRows * kPitch <= 4 * kTileElements, "staging tile too large");
    Scalar* tile_s = k_s + group * kTile * kPitch;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      uint32_t* row = reinterpret_cast<uint32_t*>(tile_s + (16 * warp + lane / 4 + 8 * r) * kPitch + 2 * t);
#pragma unroll
      for (int n = 0; n < NO; ++n) row[4 * n] = ops::pack_pair<Scalar>(o[n][2 * r], o[n][2 * r + 1]);
      if (position[r] >= 0 && t == 0)
        args.lse[stats0 + position[r]] = lse_total[r] == -INFINITY ? -INFINITY : lse_total[r] * kLn2;
    }
    __syncthreads();
    constexpr int kChunks = D / 8;  // 16-byte chunks per row
    for (int e = threadIdx.x % tc::kThreads; e < kTile * kChunks; e += tc::kThreads) {
      const int rr = e / kChunks, col = 8 * (e % kChunks);
      const int x = xq0 + rr;
      if (x >= queries.count) continue;
      const Scalar* from = tile_s + rr * kPitch + col;
      Scalar* out = args.out + (int64_t{b} * T + queries.position(x)) * args.out_stride + column + col;
      if (args.vector_io) {
        *reinterpret_cast<uint4*>(out) = *reinterpret_cast<const uint4*>(from);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) out[j] = from[j];
      }
    }
  }
}

template <int D, typename Scalar, bool kColumns>
void launch(const FastLaunch& g, FastForwardArgs<Scalar> args) {
  constexpr int kGroups = kColumns ? 1 : fast::StepsFor<D, Scalar>::kForwardGroups;
  const auto kernel = fast_forward_kernel<D, Scalar, kColumns, kGroups>;
  const size_t smem = fast::tiles_bytes<fast::StepsFor<D, Scalar>, Scalar>(kGroups + 4);
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem);
  const int64_t rows = int64_t{kTile} * kGroups;
  const int64_t ranks = kColumns ? int64_t{g.parts.stride} * g.group_tiles() : (g.geometry.shape.T + rows - 1) / rows;
  if (ranks == 0) return;
  kernel<<<fast_grid(g, ranks), tc::kThreads * kGroups, smem, g.geometry.stream>>>(g.masks, args);
  SPT_CUDA_CHECK(cudaGetLastError());
}

template <typename Scalar>
void run(const FastLaunch& g, const void* q, const void* k, const void* v, void* out, float* lse,
         const FastScratch& scratch) {
  const AttentionShape& s = g.geometry.shape;
  const FastForwardArgs<Scalar> args{static_cast<const Scalar*>(q),
                                     static_cast<const Scalar*>(k),
                                     static_cast<const Scalar*>(v),
                                     static_cast<Scalar*>(out),
                                     lse,
                                     scratch.part_o,
                                     scratch.part_lse,
                                     s.q_stride,
                                     s.k_stride,
                                     s.v_stride,
                                     s.out_stride,
                                     g.geometry.scale * kLog2e,
                                     s.B,
                                     s.H,
                                     static_cast<int>(s.T),
                                     static_cast<int>(g.group_tiles()),
                                     rows_vector_aligned({q, k, v, out}, {s.q_stride, s.k_stride, s.v_stride, s.out_stride})};
  auto both = [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    if (g.parts.columns) launch<D, Scalar, true>(g, args);
    launch<D, Scalar, false>(g, args);
  };
  switch (s.Dk) {
    case 32: return both(std::integral_constant<int, 32>{});
    case 64: return both(std::integral_constant<int, 64>{});
    default: return both(std::integral_constant<int, 128>{});
  }
}

}  // namespace

void forward_fast(const FastLaunch& g, DType dtype, const void* q, const void* k, const void* v, void* out,
                  float* lse, const FastScratch& scratch) {
  if (dtype == DType::bf16)
    run<__nv_bfloat16>(g, q, k, v, out, lse, scratch);
  else
    run<__half>(g, q, k, v, out, lse, scratch);
}

}  // namespace spt::cuda::detail
