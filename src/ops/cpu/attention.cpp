// CPU sparse attention: flash-attention structure on plain loops. Queries are taken
// in tiles of kTile rows; each row walks its own ascending key list in chunks of
// kChunk key positions, so the keys and values of a chunk stay in cache while every
// row of the tile uses them. Softmax statistics are kept per row (online rescaling
// once per chunk). The backward pass computes dq over query tiles and dk, dv over
// key tiles (walking the transposed lists), so no two threads ever add into the same
// gradient element and the result does not depend on the thread count.
#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace spt {

AttentionShape AttentionShape::resolved() const {
  SPT_CHECK(B >= 1 && T >= 1 && H >= 1, "attention shape B=", B, " T=", T, " H=", H, " must be positive");
  SPT_CHECK(Dk >= 1 && Dv >= 1, "attention head dims Dk=", Dk, " Dv=", Dv, " must be positive");
  SPT_CHECK(T <= (int64_t{1} << 31) - 1, "context length T = ", T, " exceeds 2^31 - 1");
  AttentionShape s = *this;
  if (s.q_stride == 0) s.q_stride = int64_t{H} * Dk;
  if (s.k_stride == 0) s.k_stride = int64_t{H} * Dk;
  if (s.v_stride == 0) s.v_stride = int64_t{H} * Dv;
  if (s.out_stride == 0) s.out_stride = int64_t{H} * Dv;
  SPT_CHECK(s.q_stride >= int64_t{H} * Dk && s.k_stride >= int64_t{H} * Dk, "q/k stride ", s.q_stride, "/", s.k_stride,
            " is smaller than H*Dk = ", int64_t{H} * Dk);
  SPT_CHECK(s.v_stride >= int64_t{H} * Dv && s.out_stride >= int64_t{H} * Dv, "v/out stride ", s.v_stride, "/",
            s.out_stride, " is smaller than H*Dv = ", int64_t{H} * Dv);
  return s;
}

namespace cpu {
namespace {

constexpr int kTile = 16;       // rows (queries or keys) handled together
constexpr int64_t kChunk = 512;  // positions of the other side kept in cache at once

inline float dot(const float* a, const float* b, int n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int d = 0; d < n; ++d) sum += a[d] * b[d];
  return sum;
}

inline void axpy(float alpha, const float* x, float* y, int n) {
#pragma omp simd
  for (int d = 0; d < n; ++d) y[d] += alpha * x[d];
}

void check_plan(const AttentionPlan& plan, const AttentionShape& shape) {
  SPT_CHECK(static_cast<int>(plan.heads.size()) == shape.H, "attention plan has ", plan.heads.size(),
            " heads but the tensors have H = ", shape.H);
}

// Per-thread scratch: the sorted index list of every row of a tile.
struct TileLists {
  std::vector<int32_t> list[kTile];
  size_t cursor[kTile];
};

// One head of one batch row of a (T, stride) buffer.
template <typename Scalar>
struct HeadView {
  Scalar* base;
  int64_t stride;
  int64_t head_offset;
  Scalar* at(int64_t row) const { return base + row * stride + head_offset; }
};
using Strided = HeadView<const float>;
using StridedOut = HeadView<float>;

void forward_tile(const HeadMask& mask, const AttentionShape& s, float scale, Strided q, Strided k, Strided v,
                  float* out_bh, int64_t out_stride, float* lse_bh, int64_t tile_begin) {
  thread_local TileLists rows;
  thread_local std::vector<float> scores;
  thread_local std::vector<float> acc;
  const int64_t tile_end = std::min(s.T, tile_begin + kTile);
  const int n = static_cast<int>(tile_end - tile_begin);
  acc.assign(static_cast<size_t>(n) * s.Dv, 0.0f);
  scores.resize(kChunk);
  float row_max[kTile];
  double row_sum[kTile];
  for (int r = 0; r < n; ++r) {
    mask.row_keys(tile_begin + r, rows.list[r]);
    rows.cursor[r] = 0;
    row_max[r] = -std::numeric_limits<float>::infinity();
    row_sum[r] = 0.0;
  }
  for (int64_t chunk = 0; chunk < tile_end; chunk += kChunk) {
    const int64_t chunk_end = chunk + kChunk;
    for (int r = 0; r < n; ++r) {
      const std::vector<int32_t>& keys = rows.list[r];
      size_t& c = rows.cursor[r];
      const size_t first = c;
      const float* qi = q.at(tile_begin + r);
      float chunk_max = -std::numeric_limits<float>::infinity();
      for (; c < keys.size() && keys[c] < chunk_end; ++c) {
        const float score = scale * dot(qi, k.at(keys[c]), s.Dk);
        scores[c - first] = score;
        chunk_max = std::max(chunk_max, score);
      }
      if (c == first) continue;
      float* acc_r = acc.data() + static_cast<size_t>(r) * s.Dv;
      if (chunk_max > row_max[r]) {
        const float rescale = std::exp(row_max[r] - chunk_max);
        row_sum[r] *= rescale;
        for (int d = 0; d < s.Dv; ++d) acc_r[d] *= rescale;
        row_max[r] = chunk_max;
      }
      for (size_t e = first; e < c; ++e) {
        const float p = std::exp(scores[e - first] - row_max[r]);
        row_sum[r] += p;
        axpy(p, v.at(keys[e]), acc_r, s.Dv);
      }
    }
  }
  for (int r = 0; r < n; ++r) {
    float* out_row = out_bh + (tile_begin + r) * out_stride;
    const float* acc_r = acc.data() + static_cast<size_t>(r) * s.Dv;
    if (row_sum[r] == 0.0) {
      std::fill(out_row, out_row + s.Dv, 0.0f);
      lse_bh[tile_begin + r] = -std::numeric_limits<float>::infinity();
      continue;
    }
    const float inv = static_cast<float>(1.0 / row_sum[r]);
    for (int d = 0; d < s.Dv; ++d) out_row[d] = acc_r[d] * inv;
    lse_bh[tile_begin + r] = row_max[r] + static_cast<float>(std::log(row_sum[r]));
  }
}

struct BackwardHead {
  const HeadMask* mask;
  AttentionShape s;
  float scale;
  Strided q, k, v, dout;
  const float* lse;    // (T)
  const float* delta;  // (T) rowsum(dout * out)
};

void dq_tile(const BackwardHead& bh, StridedOut dq, int64_t tile_begin) {
  thread_local TileLists rows;
  const AttentionShape& s = bh.s;
  const int64_t tile_end = std::min(s.T, tile_begin + kTile);
  const int n = static_cast<int>(tile_end - tile_begin);
  for (int r = 0; r < n; ++r) {
    bh.mask->row_keys(tile_begin + r, rows.list[r]);
    rows.cursor[r] = 0;
    float* dq_r = dq.at(tile_begin + r);
    std::fill(dq_r, dq_r + s.Dk, 0.0f);
  }
  for (int64_t chunk = 0; chunk < tile_end; chunk += kChunk) {
    const int64_t chunk_end = chunk + kChunk;
    for (int r = 0; r < n; ++r) {
      const int64_t i = tile_begin + r;
      const std::vector<int32_t>& keys = rows.list[r];
      const float* qi = bh.q.at(i);
      const float* doi = bh.dout.at(i);
      float* dq_r = dq.at(i);
      for (size_t& c = rows.cursor[r]; c < keys.size() && keys[c] < chunk_end; ++c) {
        const int64_t j = keys[c];
        const float p = std::exp(bh.scale * dot(qi, bh.k.at(j), s.Dk) - bh.lse[i]);
        const float ds = p * (dot(doi, bh.v.at(j), s.Dv) - bh.delta[i]);
        axpy(bh.scale * ds, bh.k.at(j), dq_r, s.Dk);
      }
    }
  }
}

void dkv_tile(const BackwardHead& bh, StridedOut dk, StridedOut dv, int64_t tile_begin) {
  thread_local TileLists cols;
  const AttentionShape& s = bh.s;
  const int64_t tile_end = std::min(s.T, tile_begin + kTile);
  const int n = static_cast<int>(tile_end - tile_begin);
  for (int r = 0; r < n; ++r) {
    bh.mask->col_queries(tile_begin + r, s.T, cols.list[r]);
    cols.cursor[r] = 0;
    float* dk_r = dk.at(tile_begin + r);
    float* dv_r = dv.at(tile_begin + r);
    std::fill(dk_r, dk_r + s.Dk, 0.0f);
    std::fill(dv_r, dv_r + s.Dv, 0.0f);
  }
  for (int64_t chunk = tile_begin; chunk < s.T; chunk += kChunk) {
    const int64_t chunk_end = chunk + kChunk;
    for (int r = 0; r < n; ++r) {
      const int64_t j = tile_begin + r;
      const std::vector<int32_t>& queries = cols.list[r];
      const float* kj = bh.k.at(j);
      const float* vj = bh.v.at(j);
      float* dk_r = dk.at(j);
      float* dv_r = dv.at(j);
      for (size_t& c = cols.cursor[r]; c < queries.size() && queries[c] < chunk_end; ++c) {
        const int64_t i = queries[c];
        const float p = std::exp(bh.scale * dot(bh.q.at(i), kj, s.Dk) - bh.lse[i]);
        const float* doi = bh.dout.at(i);
        axpy(p, doi, dv_r, s.Dv);
        const float ds = p * (dot(doi, vj, s.Dv) - bh.delta[i]);
        axpy(bh.scale * ds, bh.q.at(i), dk_r, s.Dk);
      }
    }
  }
}

}  // namespace

void attention_forward(const AttentionPlan& plan, const AttentionShape& shape_in, const float* q, const float* k,
                       const float* v, float* out, float* lse) {
  const AttentionShape s = shape_in.resolved();
  check_plan(plan, s);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.Dk)));
  const int64_t tiles = (s.T + kTile - 1) / kTile;
  parallel_for_dynamic(int64_t{s.B} * s.H * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / tiles, tile = item % tiles;
      const int64_t b = bh / s.H, h = bh % s.H;
      const int64_t row0 = b * s.T;
      forward_tile(plan.heads[h], s, scale, {q + row0 * s.q_stride, s.q_stride, h * s.Dk},
                   {k + row0 * s.k_stride, s.k_stride, h * s.Dk}, {v + row0 * s.v_stride, s.v_stride, h * s.Dv},
                   out + row0 * s.out_stride + h * s.Dv, s.out_stride, lse + bh * s.T, tile * kTile);
    }
  });
}

void attention_backward(const AttentionPlan& plan, const AttentionShape& shape_in, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const float* dout, float* dq, float* dk,
                        float* dv) {
  const AttentionShape s = shape_in.resolved();
  check_plan(plan, s);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.Dk)));
  std::vector<float> delta(static_cast<size_t>(s.B) * s.H * s.T);  // (B, H, T)
  parallel_for(int64_t{s.B} * s.H * s.T, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / s.T, t = item % s.T;
      const int64_t row = (bh / s.H) * s.T + t, h = bh % s.H;
      const float* o = out + row * s.out_stride + h * s.Dv;
      const float* g = dout + row * s.out_stride + h * s.Dv;
      double sum = 0.0;
      for (int d = 0; d < s.Dv; ++d) sum += static_cast<double>(o[d]) * g[d];
      delta[item] = static_cast<float>(sum);
    }
  }, 1024);
  const int64_t tiles = (s.T + kTile - 1) / kTile;
  auto head = [&](int64_t bh) {
    const int64_t b = bh / s.H, h = bh % s.H, row0 = b * s.T;
    return BackwardHead{&plan.heads[h], s, scale,
                        {q + row0 * s.q_stride, s.q_stride, h * s.Dk}, {k + row0 * s.k_stride, s.k_stride, h * s.Dk},
                        {v + row0 * s.v_stride, s.v_stride, h * s.Dv}, {dout + row0 * s.out_stride, s.out_stride, h * s.Dv},
                        lse + bh * s.T, delta.data() + bh * s.T};
  };
  parallel_for_dynamic(int64_t{s.B} * s.H * tiles * 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const bool keys_side = item % 2 == 1;
      const int64_t bh = item / 2 / tiles, tile = item / 2 % tiles;
      const int64_t b = bh / s.H, h = bh % s.H, row0 = b * s.T;
      const BackwardHead bwd = head(bh);
      if (keys_side)
        dkv_tile(bwd, {dk + row0 * s.k_stride, s.k_stride, h * s.Dk}, {dv + row0 * s.v_stride, s.v_stride, h * s.Dv},
                 tile * kTile);
      else
        dq_tile(bwd, {dq + row0 * s.q_stride, s.q_stride, h * s.Dk}, tile * kTile);
    }
  });
}

}  // namespace cpu
}  // namespace spt
