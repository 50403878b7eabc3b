// The pattern-specific CUDA attention at the paper's longest context, T = 2^20 (about a
// million audio samples), checked in chunks: a float64 CPU reference of chosen query rows
// (out, lse, dQ) and key rows (dK, dV) from the pattern's own key and query lists, with the
// tolerances of test_cuda_attention.cpp. The backward is a function of (q, k, v, out, lse,
// dout), so its reference takes the GPU's stored out and lse, checked first.
#include <gtest/gtest.h>

#ifdef SPT_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "cuda_test_util.h"
#include "ops/attention.h"
#include "ops/cuda/attention_plan.h"

namespace spt {
namespace {

using namespace cuda_test;


// L2 error of one chunk against the allowed error of the header of test_cuda_attention.cpp.
struct ChunkError {
  double err2 = 0, scale2 = 0, round2 = 0;
  void add(double got, double want, DType dtype) {
    const double round = round_to(dtype, static_cast<float>(want)) - want;
    err2 += (got - want) * (got - want);
    scale2 += want * want + 1.0;
    round2 += round * round;
  }
  void expect_within(double fp32_rel, const std::string& what) const {
    const double allowed = fp32_rel * std::sqrt(scale2) + 3.0 * std::sqrt(round2);
    EXPECT_LE(std::sqrt(err2), allowed) << what;
  }
};

struct Chunk {
  int64_t begin, end;
};

void check_long_context(const PatternSpec& spec, int64_t T, int D, const std::vector<Chunk>& query_chunks,
                        const std::vector<Chunk>& key_chunks) {
  const DType dtype = DType::bf16;
  const Pattern pattern(spec);
  const AttentionPlan masks = make_plan(pattern, 0);
  const int H = spec.heads;
  SCOPED_TRACE(message(pattern.describe(), ", T ", T, ", D ", D));
  AttentionShape shape;
  shape.B = 1;
  shape.T = T;
  shape.H = H;
  shape.Dk = shape.Dv = D;
  const int64_t W = int64_t{H} * D;
  const size_t n = static_cast<size_t>(T * W);  // (T, H, D)
  auto at = [&](int64_t t, int h) { return static_cast<size_t>(t * W + int64_t{h} * D); };

  std::vector<std::vector<float>> inputs(4, std::vector<float>(n));  // q, k, v, dout
  for (int t = 0; t < 4; ++t) {
    std::vector<float>& x = inputs[t];
    const uint64_t key = rng_key(4242, static_cast<uint64_t>(t));
    parallel_for(static_cast<int64_t>(n), [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) x[e] = round_to(dtype, normal01(key, e));
    }, 4096);
  }
  const std::vector<float>&q = inputs[0], &k = inputs[1], &v = inputs[2], &dout = inputs[3];
  DeviceArray q_dev(dtype, n), k_dev(dtype, n), v_dev(dtype, n), dout_dev(dtype, n), out_dev(dtype, n);
  DeviceArray lse_dev(DType::f32, static_cast<size_t>(H * T)), dq_dev(dtype, n), dk_dev(dtype, n), dv_dev(dtype, n);
  q_dev.upload(q);
  k_dev.upload(k);
  v_dev.upload(v);
  dout_dev.upload(dout);

  const cuda::DeviceAttentionPlan plan = cuda::make_device_plan(pattern, 0, T, 64, false);
  ASSERT_STREQ(cuda::attention_path(plan, shape, dtype), "fast");
  cuda::attention_forward(plan, shape, dtype, q_dev.data(), k_dev.data(), v_dev.data(), out_dev.data(),
                          lse_dev.floats());
  cuda::attention_backward(plan, shape, dtype, q_dev.data(), k_dev.data(), v_dev.data(), out_dev.data(),
                           lse_dev.floats(), dout_dev.data(), dq_dev.data(), dk_dev.data(), dv_dev.data());
  SPT_CUDA_CHECK(cudaDeviceSynchronize());
  const DeviceArray::Host out_h = out_dev.download(), lse_h = lse_dev.download(), dq_h = dq_dev.download(),
                          dk_h = dk_dev.download(), dv_h = dv_dev.download();

  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto dot = [&](const std::vector<float>& a, size_t ia, const std::vector<float>& b, size_t ib) {
    double s = 0;
    for (int d = 0; d < D; ++d) s += static_cast<double>(a[ia + d]) * b[ib + d];
    return s;
  };
  // delta_i = dout_i . out_i from the stored out, for every (head, query): (H, T).
  std::vector<double> delta(static_cast<size_t>(H * T));
  parallel_for(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t)
      for (int h = 0; h < H; ++h) {
        double s = 0;
        for (int d = 0; d < D; ++d) s += static_cast<double>(dout[at(t, h) + d]) * out_h.value(at(t, h) + d);
        delta[static_cast<size_t>(h * T + t)] = s;
      }
  }, 1024);
  auto lse_of = [&](int h, int64_t t) { return static_cast<double>(lse_h.value(static_cast<size_t>(h * T + t))); };

  const double fwd_rel = 32.0 * kUnitRoundoff * std::sqrt(2.0 * D + static_cast<double>(T));
  std::vector<int32_t> list;
  for (int h = 0; h < H; ++h) {
    const HeadMask& mask = masks.heads[h];
    for (const Chunk& c : query_chunks) {
      ChunkError out_err, lse_err, dq_err;
      for (int64_t i = c.begin; i < c.end; ++i) {
        mask.row_keys(i, list);
        std::vector<double> s(list.size());
        double m = -INFINITY;
        for (size_t e = 0; e < list.size(); ++e) {
          s[e] = scale * dot(q, at(i, h), k, at(list[e], h));
          m = std::max(m, s[e]);
        }
        double sum = 0;
        for (double x : s) sum += std::exp(x - m);
        lse_err.add(lse_of(h, i), m + std::log(sum), DType::f32);
        std::vector<double> o(D, 0.0), g(D, 0.0);
        const double lse_gpu = lse_of(h, i), delta_i = delta[static_cast<size_t>(h * T + i)];
        for (size_t e = 0; e < list.size(); ++e) {
          const size_t kv = at(list[e], h);
          const double p = std::exp(s[e] - m) / sum, p_gpu = std::exp(s[e] - lse_gpu);
          const double ds = p_gpu * (dot(dout, at(i, h), v, kv) - delta_i);
          for (int d = 0; d < D; ++d) {
            o[d] += p * v[kv + d];
            g[d] += scale * ds * k[kv + d];
          }
        }
        for (int d = 0; d < D; ++d) {
          out_err.add(out_h.value(at(i, h) + d), o[d], dtype);
          dq_err.add(dq_h.value(at(i, h) + d), g[d], dtype);
        }
      }
      const std::string where = message("head ", h, ", queries [", c.begin, ", ", c.end, ")");
      out_err.expect_within(fwd_rel, "out, " + where);
      lse_err.expect_within(fwd_rel, "lse, " + where);
      dq_err.expect_within(4.0 * fwd_rel, "dq, " + where);
    }
    for (const Chunk& c : key_chunks) {
      // Every key of the chunk meets up to T queries: one thread per key.
      const int64_t count = c.end - c.begin;
      std::vector<double> gk(static_cast<size_t>(count * D), 0.0), gv(gk.size(), 0.0);  // (count, D)
      parallel_for(count, [&](int64_t first, int64_t last) {
        std::vector<int32_t> attending;
        for (int64_t r = first; r < last; ++r) {
          const int64_t j = c.begin + r;
          mask.col_queries(j, T, attending);
          const size_t kv = at(j, h);
          double* rk = gk.data() + r * D;
          double* rv = gv.data() + r * D;
          for (int32_t i : attending) {
            const double p = std::exp(scale * dot(q, at(i, h), k, kv) - lse_of(h, i));
            const double ds = p * (dot(dout, at(i, h), v, kv) - delta[static_cast<size_t>(h * T + i)]);
            for (int d = 0; d < D; ++d) {
              rv[d] += p * dout[at(i, h) + d];
              rk[d] += scale * ds * q[at(i, h) + d];
            }
          }
        }
      });
      ChunkError dk_err, dv_err;
      for (int64_t r = 0; r < count; ++r)
        for (int d = 0; d < D; ++d) {
          const size_t kv = at(c.begin + r, h) + d;
          dk_err.add(dk_h.value(kv), gk[static_cast<size_t>(r * D + d)], dtype);
          dv_err.add(dv_h.value(kv), gv[static_cast<size_t>(r * D + d)], dtype);
        }
      const std::string where = message("head ", h, ", keys [", c.begin, ", ", c.end, ")");
      dk_err.expect_within(4.0 * fwd_rel, "dk, " + where);
      dv_err.expect_within(4.0 * fwd_rel, "dv, " + where);
    }
  }
}

TEST(CudaAttentionLong, MillionPositionsInChunks) {
  SPT_REQUIRE_CUDA_DEVICE();
  const int64_t T = int64_t{1} << 20;
  const int64_t mid = T / 2;
  const std::vector<Chunk> queries = {{0, 40}, {mid - 30, mid + 34}, {T - 64, T}};
  // Key chunks that hold both heads' summary columns (fixed, l 1024, c 32, v 2: columns
  // [960, 992) and [992, 1024) of each block) and the sequence's two ends.
  const std::vector<Chunk> keys = {{0, 24}, {mid + 976, mid + 1008}, {T - 40, T}};
  check_long_context({PatternKind::strided, 1024, 1, 1, CombineMode::merged, 2}, T, 32, queries, keys);
  check_long_context({PatternKind::fixed, 1024, 32, 2, CombineMode::merged, 2}, T, 32, queries, keys);
}

}  // namespace
}  // namespace spt

#endif
