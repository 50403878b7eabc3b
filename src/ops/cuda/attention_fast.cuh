// Device pieces of the pattern-specific ("fast") tensor-core attention kernels.
//
// The paper's patterns are nearly dense once their keys are put next to each other, so
// these kernels never walk a block layout. Each part of a pattern is a dense-tile problem
// over a *view*: a map from a virtual row index x to a position of the sequence.
//   natural  x -> x                                   (dense, local, A1 of strided and fixed)
//   summary  x -> (x / c) l + lo + x mod c            (fixed A2: the summary columns, compacted)
//   group    x -> r + l x for one residue r = i mod l  (strided A2: the sequence transposed)
// A part is a rule on pairs (query x, key x) of its views:
//   A1       natural queries, natural keys: the head's own A1 set (j <= i and dense /
//            i - j < l / same l-block);
//   summary  natural queries, summary keys: key block < query block when the head also uses
//            A1 (its own block's summary keys are already in A1), else position <= i;
//   column   group queries, group keys: key x < query x when the head also uses A1 (j = i is
//            in A1), else key x <= query x.
// Each part tiles its two views into 64-row tiles; only tiles that cross the rule's edge
// (the diagonal, a block edge, the end of a view) evaluate the rule per element.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/divisor.h"
#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/attention_tc.cuh"
#include "ops/cuda/attention_tc_tiles.cuh"
#include "ops/cuda/attention_wgmma.cuh"

namespace spt::cuda::detail::fast {

using tc::kTile;

#ifdef SPT_CUDA_WGMMA
constexpr bool kWgmma = true;
#else
constexpr bool kWgmma = false;
#endif

// The tile steps of head dim D: wgmma where the build targets sm_90a and D = 64, else mma.sync.
template <int D, typename Scalar>
using StepsFor = std::conditional_t<kWgmma && D == 64, wg::Steps<Scalar>, tc::Steps<D, Scalar>>;

// Shared memory of a kernel with `tiles` tiles and `extra` bytes after them, with room to align
// the tiles as the steps need.
template <typename S, typename Scalar>
constexpr size_t tiles_bytes(int tiles, size_t extra = 0) {
  return sizeof(Scalar) * tiles * S::kTileElements + extra + (S::kAlignBytes > 16 ? S::kAlignBytes : 0);
}

// The first tile in dynamic shared memory, aligned as the steps need.
template <typename S, typename Scalar>
__device__ __forceinline__ Scalar* first_tile(unsigned char* smem) {
  uint32_t pad = (S::kAlignBytes - tc::smem_address(smem) % S::kAlignBytes) % S::kAlignBytes;
  // Opaque from here on: the compiler would otherwise compute the padding again from the
  // array's address wherever a tile's address is needed, every step of the loops.
  asm("" : "+r"(pad));
  return reinterpret_cast<Scalar*>(smem + pad);
}

enum Rule : int { kRuleA1 = 0, kRuleSummary = 1, kRuleColumn = 2 };
enum ViewKind : int { kViewNatural = 0, kViewSummary = 1, kViewGroup = 2 };

// One head's pattern constants.
struct Head {
  int kind;  // DeviceKind
  int l;     // stride, at least 1
  int c;     // fixed: summary width
  int lo;    // fixed: first summary column of this head
  bool a1, a2;
  int T;
  Divisor by_l, by_c;
};

__device__ __forceinline__ Head make_head(const DeviceHeadMask& m, int T) {
  Head h;
  h.kind = m.kind;
  h.l = m.stride > 1 ? m.stride : 1;
  h.c = m.summary_hi - m.summary_lo;
  h.lo = m.summary_lo;
  h.a1 = m.use_a1 != 0;
  h.a2 = m.use_a2 != 0;
  h.T = T;
  h.by_l = Divisor::of(h.l);
  h.by_c = Divisor::of(h.c);
  return h;
}

// Summary keys of a head that lie before T: c per complete l-block, then the part of the
// last block's summary columns before T.
__host__ __device__ __forceinline__ int summary_count(int T, int l, int lo, int c) {
  const int tail = T % l - lo;
  return (T / l) * c + (tail < 0 ? 0 : tail > c ? c : tail);
}

struct View {
  int kind;
  int l, c, lo, residue;
  int count;  // valid virtual rows: [0, count)
  Divisor by_c;

  __device__ __forceinline__ int position(int x) const {
    if (kind == kViewNatural) return x;
    if (kind == kViewSummary) {
      const int run = by_c.div(x);
      return run * l + lo + (x - run * c);
    }
    return residue + l * x;
  }
};

// first ? a : b, field by field: a conditional choice between two views' addresses would
// put both in local memory.
__device__ __forceinline__ View pick(bool first, const View& a, const View& b) {
  return {first ? a.kind : b.kind,
          first ? a.l : b.l,
          first ? a.c : b.c,
          first ? a.lo : b.lo,
          first ? a.residue : b.residue,
          first ? a.count : b.count,
          {first ? a.by_c.d : b.by_c.d, first ? a.by_c.m : b.by_c.m}};
}

__device__ __forceinline__ View natural_view(const Head& h) {
  return {kViewNatural, 1, 1, 0, 0, h.T, Divisor::of(1)};
}
__device__ __forceinline__ View summary_view(const Head& h) {
  return {kViewSummary, h.l, h.c, h.lo, 0, summary_count(h.T, h.l, h.lo, h.c), h.by_c};
}
__device__ __forceinline__ View group_view(const Head& h, int residue) {
  return {kViewGroup, h.l, 1, 0, residue, residue < h.T ? (h.T - residue + h.l - 1) / h.l : 0, Divisor::of(1)};
}

// The virtual columns [lo, hi) that virtual row x may pair with: the keys of query x when
// rows are queries (x is then the position i for the natural-query rules), the queries of
// key x when rows are keys.
template <int Rule, bool kRowsAreQueries>
__device__ __forceinline__ void row_interval(const Head& h, const View& keys, int x, int& lo, int& hi) {
  constexpr int kNoEnd = 0x7FFFFFFF;
  if constexpr (kRowsAreQueries) {
    lo = 0;
    if constexpr (Rule == kRuleA1) {
      hi = x + 1;
      if (h.kind == kLocal || h.kind == kStrided) lo = x - h.l + 1;
      if (h.kind == kFixed) lo = x - h.by_l.mod(x);
    } else if constexpr (Rule == kRuleSummary) {
      const int block = h.by_l.div(x);
      hi = block * h.c;
      if (!h.a1) hi += min(max(x - block * h.l - h.lo + 1, 0), h.c);
    } else {
      hi = h.a1 ? x : x + 1;
    }
    hi = min(hi, keys.count);
  } else {
    hi = kNoEnd;
    if constexpr (Rule == kRuleA1) {
      lo = x;
      if (h.kind == kLocal || h.kind == kStrided) hi = x + h.l;
      if (h.kind == kFixed) hi = (h.by_l.div(x) + 1) * h.l;
    } else if constexpr (Rule == kRuleSummary) {
      lo = h.a1 ? (h.by_c.div(x) + 1) * h.l : keys.position(x);
    } else {
      lo = h.a1 ? x + 1 : x;
    }
    if (x >= keys.count) hi = lo;  // a key past the view's end pairs with nothing
  }
}

// Whether every pair of query tile [xq0, xq0 + 64) and key tile [xk0, xk0 + 64) is allowed
// (query rows past the view's end are never stored, so only the keys' end matters).
template <int Rule>
__device__ __forceinline__ bool tile_full(const Head& h, const View& keys, int xq0, int xk0) {
  const int xk1 = xk0 + kTile - 1, xq1 = xq0 + kTile - 1;
  if (xk1 >= keys.count) return false;
  if constexpr (Rule == kRuleA1) {
    if (xk1 > xq0) return false;
    if (h.kind == kLocal || h.kind == kStrided) return xq1 - xk0 < h.l;
    if (h.kind == kFixed) return h.by_l.div(xk0) == h.by_l.div(xq1);
    return true;
  } else if constexpr (Rule == kRuleSummary) {
    return h.a1 ? h.by_c.div(xk1) < h.by_l.div(xq0) : keys.position(xk1) <= xq0;
  } else {
    return h.a1 ? xk1 < xq0 : xk1 <= xq0;
  }
}

// Keys [begin, end) a query tile whose last valid row is xq_last may meet; begin is a
// multiple of the tile.
template <int Rule>
__device__ __forceinline__ void key_range(const Head& h, const View& keys, int xq0, int xq_last, int& begin,
                                          int& end) {
  if constexpr (Rule == kRuleA1) {
    begin = 0;
    if (h.kind == kLocal || h.kind == kStrided) begin = max(0, xq0 - h.l + 1);
    if (h.kind == kFixed) begin = h.by_l.div(xq0) * h.l;
    end = xq_last + 1;
  } else if constexpr (Rule == kRuleSummary) {
    begin = 0;
    const int block = h.by_l.div(xq_last);
    int n = block * h.c;
    if (!h.a1) n += min(max(xq_last - block * h.l - h.lo + 1, 0), h.c);
    end = n;
  } else {
    begin = 0;
    end = h.a1 ? xq_last : xq_last + 1;
  }
  end = min(end, keys.count);
  begin -= begin % kTile;
}

// Queries [begin, end) that may attend to a key tile starting at xk0 whose last valid key
// is xk_last; begin is a multiple of the tile.
template <int Rule>
__device__ __forceinline__ void query_range(const Head& h, const View& keys, const View& queries, int xk0,
                                            int xk_last, int& begin, int& end) {
  if constexpr (Rule == kRuleA1) {
    begin = xk0;
    end = h.T;
    if (h.kind == kLocal || h.kind == kStrided) end = min(h.T, xk_last + h.l);
    if (h.kind == kFixed) end = min(h.T, (h.by_l.div(xk_last) + 1) * h.l);
  } else if constexpr (Rule == kRuleSummary) {
    begin = h.a1 ? (h.by_c.div(xk0) + 1) * h.l : keys.position(xk0);
    end = h.T;
  } else {
    begin = xk0;
    end = queries.count;
  }
  begin -= begin % kTile;
}

// Sets to -inf the entries of a 16-row accumulator block whose pair the rule refuses. The
// block's rows are virtual rows row_x0 + g (+ 8); its columns col_x0 + 8 n + 2 t + c. Rows
// are queries (forward, dQ) or keys (dK/dV).
template <int Rule, bool kRowsAreQueries, int N>
__device__ __forceinline__ void mask_tile(float (&s)[N][4], const Head& h, const View& keys, int row_x0, int col_x0) {
  const int lane = threadIdx.x % 32;
  const int col = col_x0 + 2 * (lane % 4);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    int lo, hi;
    row_interval<Rule, kRowsAreQueries>(h, keys, row_x0 + lane / 4 + 8 * r, lo, hi);
#pragma unroll
    for (int n = 0; n < N; ++n)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int x_col = col + 8 * n + c;
        if (x_col < lo || x_col >= hi) s[n][2 * r + c] = -INFINITY;
      }
  }
}

// One tensor a view's rows are copied from: `base` points at position 0 of this batch row and
// head, `stride` elements between positions; the rows land in `tile` and the ones after it.
template <typename Scalar>
struct TileSource {
  Scalar* tile;
  const Scalar* base;
  int64_t stride;
};

// Starts copying virtual rows [x0, x0 + kRows) of a view from each of the sources (keys and
// values, queries and dout: the same positions) into kRows / 64 consecutive tiles each, laid
// out as the steps S say, with the kLoaders threads of the CTA. Rows past the view's end
// become zero. Visible after cp_async_wait_all(), S::smem_ready() and a barrier.
template <int D, typename S, int kRows = kTile, int kLoaders = tc::kThreads, typename Scalar, int N>
__device__ __forceinline__ void load_view_tiles(const TileSource<Scalar> (&sources)[N], const View& view, int x0,
                                                bool vector_io) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  if (vector_io) {
    // This thread's rows are r0, r0 + kStep, ...: one division for the first, steps after;
    // kStep need not divide kRows (with three forward warpgroups, 384 loaders copy 48 rows a pass).
    constexpr int kStep = kLoaders / kChunks;
    constexpr int kPasses = (kRows + kStep - 1) / kStep;
    const int r0 = threadIdx.x / kChunks, col = (threadIdx.x % kChunks) * 8;
    if (view.kind == kViewNatural && x0 + kRows <= view.count) {
      // Whole tiles of consecutive rows (every tile of dense attention but the last): one
      // address per source, then steps of kStep rows, no row tests.
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const Scalar* from = sources[k].base + int64_t{x0 + r0} * sources[k].stride + col;
#pragma unroll
        for (int it = 0; it < kPasses; ++it) {
          const int r = r0 + it * kStep;
          if (kRows % kStep != 0 && r >= kRows) break;
          tc::cp_async_16(sources[k].tile + S::offset(r, col), from, 16);
          from += kStep * sources[k].stride;
        }
      }
      return;
    }
    int x = x0 + r0;
    int offset = view.kind == kViewSummary ? view.by_c.mod(x) : 0;  // summary: column within the run of c
    int position = view.position(x);
#pragma unroll
    for (int it = 0; it < kPasses; ++it) {
      const int r = r0 + it * kStep;
      if (kRows % kStep != 0 && r >= kRows) break;
      const bool valid = x < view.count;
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const Scalar* from = valid ? sources[k].base + int64_t{position} * sources[k].stride + col : sources[k].base;
        tc::cp_async_16(sources[k].tile + S::offset(r, col), from, valid ? 16 : 0);
      }
      x += kStep;
      if (view.kind == kViewGroup) {
        position += kStep * view.l;
      } else {
        position += kStep;
        if (view.kind == kViewSummary)
          for (offset += kStep; offset >= view.c; offset -= view.c) position += view.l - view.c;
      }
    }
  } else {
    for (int e = threadIdx.x; e < kRows * D; e += kLoaders) {
      const int r = e / D, col = e % D;
      const bool valid = x0 + r < view.count;
      const int64_t position = valid ? view.position(x0 + r) : 0;
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const auto* from = reinterpret_cast<const uint16_t*>(sources[k].base);
        reinterpret_cast<uint16_t*>(sources[k].tile)[S::offset(r, col)] =
            valid ? from[position * sources[k].stride + col] : uint16_t{0};
      }
    }
  }
}

// load_view_tiles for one source.
template <int D, typename S, int kRows = kTile, int kLoaders = tc::kThreads, typename Scalar>
__device__ __forceinline__ void load_view_tile(Scalar* tile, const Scalar* base, int64_t stride, const View& view,
                                               int x0, bool vector_io) {
  const TileSource<Scalar> sources[1] = {{tile, base, stride}};
  load_view_tiles<D, S, kRows, kLoaders>(sources, view, x0, vector_io);
}

// Walks up to two parts' tiles in order: [begin[0], end[0]) then [begin[1], end[1]).
struct PartTiles {
  int begin[2], end[2];
  int part = 0, x = 0;

  __device__ void start() {
    part = 0;
    x = begin[0];
  }
  // Constant indices only, so that the arrays stay in registers.
  __device__ bool next(int& part_out, int& x0) {
    if (part == 0) {
      if (x < end[0]) return take(0, part_out, x0);
      part = 1;
      x = begin[1];
    }
    if (part == 1 && x < end[1]) return take(1, part_out, x0);
    part = 2;
    return false;
  }

 private:
  __device__ bool take(int p, int& part_out, int& x0) {
    part_out = p;
    x0 = x;
    x += kTile;
    return true;
  }
};

// The start of a step over double-buffered tiles: the next tile of `tiles`, if any, starts
// loading into the other stage (load(stage, part, x0)); returns whether there is one.
template <typename Load>
__device__ __forceinline__ bool start_step(PartTiles& tiles, int stage, int& part_next, int& x0_next,
                                           const Load& load) {
  part_next = 0;
  x0_next = 0;
  const bool have_next = tiles.next(part_next, x0_next);
  if (have_next) load(stage ^ 1, part_next, x0_next);
  tc::cp_async_commit();
  return have_next;
}

// The end of a step over double-buffered tiles: waits for this thread's copies of the next
// tile, makes them visible to every warp (and to wgmma's reads), then moves on to it.
template <typename S>
__device__ __forceinline__ void finish_step(int& stage, int& part, int& x0, bool& have, int part_next, int x0_next,
                                            bool have_next) {
  tc::cp_async_wait_all();
  S::smem_ready();
  __syncthreads();
  stage ^= 1;
  part = part_next;
  x0 = x0_next;
  have = have_next;
}

// The query tile of a query-major CTA (forward, dQ): blockIdx.x = rank * (B * H) + (b * H + h).
// Natural tiles of kRows rows are taken from the last (the longest rows of a causal pattern
// first); the columns part takes residue group rank mod l, its 64-row tiles from the last.
// `active` is false when the CTA has nothing to do.
struct QueryTile {
  int b, h, bh;
  Head head;
  View queries;
  int xq0;
  bool active;
};

template <bool kColumns, int kRows = kTile>
__device__ __forceinline__ QueryTile query_tile(const DeviceHeadMask* masks, int B, int H, int T, int group_tiles) {
  static_assert(!kColumns || kRows == kTile, "the columns part takes 64-row query tiles");
  QueryTile q;
  q.bh = blockIdx.x % (B * H);
  const int rank = blockIdx.x / (B * H);
  q.b = q.bh / H;
  q.h = q.bh % H;
  q.head = make_head(masks[q.h], T);
  q.active = true;
  if constexpr (kColumns) {
    q.queries = group_view(q.head, rank % q.head.l);
    q.xq0 = (group_tiles - 1 - rank / q.head.l) * kTile;
    q.active = q.head.a2 && q.xq0 < q.queries.count;
  } else {
    q.queries = natural_view(q.head);
    q.xq0 = ((T + kRows - 1) / kRows - 1 - rank) * kRows;
  }
  return q;
}

// The key parts that query rows [q.xq0, q.xq0 + kRows) walk: part 0 is A1 over the natural keys
// (for the columns part, the group's own keys), part 1 fixed's summary keys.
struct KeyParts {
  View keys0, keys1;
  PartTiles tiles;
};

template <bool kColumns, int kRows = kTile>
__device__ __forceinline__ KeyParts key_parts(const QueryTile& q) {
  constexpr int kFirstRule = kColumns ? kRuleColumn : kRuleA1;
  KeyParts k;
  k.keys0 = kColumns ? q.queries : natural_view(q.head);
  k.keys1 = summary_view(q.head);
  const int xq_last = min(q.xq0 + kRows, q.queries.count) - 1;
  k.tiles.begin[0] = k.tiles.end[0] = k.tiles.begin[1] = k.tiles.end[1] = 0;
  if (kColumns || q.head.a1) key_range<kFirstRule>(q.head, k.keys0, q.xq0, xq_last, k.tiles.begin[0], k.tiles.end[0]);
  if (!kColumns && q.head.kind == kFixed && q.head.a2)
    key_range<kRuleSummary>(q.head, k.keys1, q.xq0, xq_last, k.tiles.begin[1], k.tiles.end[1]);
  k.tiles.start();
  return k;
}

// Masks this warp's 16 rows of a query-major score tile of key part `part` at key x0,
// unless the whole tile is allowed.
template <bool kColumns, int N>
__device__ __forceinline__ void mask_part(float (&s)[N][4], const QueryTile& q, const KeyParts& k, int part, int x0,
                                          int warp) {
  constexpr int kFirstRule = kColumns ? kRuleColumn : kRuleA1;
  if (part == 0) {
    if (!tile_full<kFirstRule>(q.head, k.keys0, q.xq0, x0))
      mask_tile<kFirstRule, true>(s, q.head, k.keys0, q.xq0 + 16 * warp, x0);
  } else if (!tile_full<kRuleSummary>(q.head, k.keys1, q.xq0, x0)) {
    mask_tile<kRuleSummary, true>(s, q.head, k.keys1, q.xq0 + 16 * warp, x0);
  }
}

}  // namespace spt::cuda::detail::fast
