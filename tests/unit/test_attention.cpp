// CPU sparse attention against a naive dense-masked reference in double precision,
// and its gradients against central finite differences of that reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "brute_pattern.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/attention.h"
#include "test_support.h"

namespace spt {
namespace {

using testing_support::kUnitRoundoff;

struct Case {
  PatternSpec spec;
  int layer;
  int B;
  int64_t T;
  int Dk, Dv;
  bool fused;  // q, k, v interleaved in one (B, T, 2*H*Dk + H*Dv) buffer
};

// Naive reference: for every (b, h, i) a full pass over j <= i with the brute-force mask.
struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

float input_value(uint64_t key, uint64_t index) { return normal01(key, index); }

class AttentionFixture {
 public:
  explicit AttentionFixture(const Case& c) : c_(c), pattern_(c.spec), plan_(make_plan(pattern_, c.layer)) {
    const int H = c.spec.heads;
    qk_width_ = int64_t{H} * c.Dk;
    v_width_ = int64_t{H} * c.Dv;
    shape_.B = c.B;
    shape_.T = c.T;
    shape_.H = H;
    shape_.Dk = c.Dk;
    shape_.Dv = c.Dv;
    const int64_t rows = c.B * c.T;
    if (c.fused) {
      const int64_t stride = 2 * qk_width_ + v_width_;
      shape_.q_stride = shape_.k_stride = shape_.v_stride = stride;
      qkv_.resize(rows * stride);
      for (size_t e = 0; e < qkv_.size(); ++e) qkv_[e] = input_value(11, e);
      q_ = qkv_.data();
      k_ = qkv_.data() + qk_width_;
      v_ = qkv_.data() + 2 * qk_width_;
    } else {
      qkv_.resize(rows * (2 * qk_width_ + v_width_));
      for (size_t e = 0; e < qkv_.size(); ++e) qkv_[e] = input_value(11, e);
      q_ = qkv_.data();
      k_ = qkv_.data() + rows * qk_width_;
      v_ = qkv_.data() + 2 * rows * qk_width_;
    }
    out_.assign(rows * v_width_, 0.0f);
    dout_.resize(rows * v_width_);
    for (size_t e = 0; e < dout_.size(); ++e) dout_[e] = input_value(12, e);
    lse_.assign(int64_t{c.B} * H * c.T, 0.0f);
  }

  int64_t qs() const { return c_.fused ? shape_.q_stride : qk_width_; }
  int64_t vs() const { return c_.fused ? shape_.v_stride : v_width_; }
  double qd(const float* base, int64_t row, int h, int d, int64_t stride, int D) const {
    return base[row * stride + int64_t{h} * D + d];
  }

  // Loss = sum(dout * out) and its gradients, all in double, from inputs q, k, v (double copies).
  Reference reference(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
                      bool with_grad) const {
    const int H = c_.spec.heads, Dk = c_.Dk, Dv = c_.Dv;
    const int64_t T = c_.T;
    const double scale = 1.0 / std::sqrt(static_cast<double>(Dk));
    Reference r;
    r.out.assign(c_.B * T * H * Dv, 0.0);
    r.lse.assign(c_.B * H * T, -std::numeric_limits<double>::infinity());
    if (with_grad) {
      r.dq.assign(q.size(), 0.0);
      r.dk.assign(k.size(), 0.0);
      r.dv.assign(v.size(), 0.0);
    }
    std::vector<double> p(T);
    for (int b = 0; b < c_.B; ++b)
      for (int h = 0; h < H; ++h)
        for (int64_t i = 0; i < T; ++i) {
          const int64_t qi = ((b * T + i) * H + h) * Dk;
          double max_score = -std::numeric_limits<double>::infinity();
          for (int64_t j = 0; j < T; ++j) {
            p[j] = -std::numeric_limits<double>::infinity();
            if (!brute_allows(c_.spec, c_.layer, h, i, j)) continue;
            const int64_t kj = ((b * T + j) * H + h) * Dk;
            double s = 0;
            for (int d = 0; d < Dk; ++d) s += q[qi + d] * k[kj + d];
            p[j] = s * scale;
            max_score = std::max(max_score, p[j]);
          }
          if (max_score == -std::numeric_limits<double>::infinity()) continue;
          double sum = 0;
          for (int64_t j = 0; j < T; ++j) sum += std::exp(p[j] - max_score);
          r.lse[(b * H + h) * T + i] = max_score + std::log(sum);
          const int64_t oi = ((b * T + i) * H + h) * Dv;
          for (int64_t j = 0; j < T; ++j) {
            p[j] = std::exp(p[j] - max_score) / sum;
            for (int d = 0; d < Dv; ++d) r.out[oi + d] += p[j] * v[((b * T + j) * H + h) * Dv + d];
          }
          if (!with_grad) continue;
          double delta = 0;
          for (int d = 0; d < Dv; ++d) delta += dout_[oi + d] * r.out[oi + d];
          for (int64_t j = 0; j < T; ++j) {
            if (p[j] == 0.0) continue;
            const int64_t kj = ((b * T + j) * H + h) * Dk, vj = ((b * T + j) * H + h) * Dv;
            double dp = 0;
            for (int d = 0; d < Dv; ++d) {
              dp += dout_[oi + d] * v[vj + d];
              r.dv[vj + d] += p[j] * dout_[oi + d];
            }
            const double ds = p[j] * (dp - delta) * scale;
            for (int d = 0; d < Dk; ++d) {
              r.dq[qi + d] += ds * k[kj + d];
              r.dk[kj + d] += ds * q[qi + d];
            }
          }
        }
    return r;
  }

  // Packed double copies (B, T, H, D) of the op's strided inputs.
  std::vector<double> packed(const float* base, int64_t stride, int D) const {
    const int H = c_.spec.heads;
    std::vector<double> x(c_.B * c_.T * H * D);
    for (int64_t row = 0; row < c_.B * c_.T; ++row)
      for (int64_t e = 0; e < H * D; ++e) x[row * H * D + e] = base[row * stride + e];
    return x;
  }
  std::vector<double> packed_grad(const std::vector<float>& g, int64_t offset, int64_t stride, int D) const {
    return packed(g.data() + offset, stride, D);
  }

  void run_and_compare(bool check_fd) {
    cpu::attention_forward(plan_, shape_, q_, k_, v_, out_.data(), lse_.data());
    std::vector<float> grads(qkv_.size(), 1234.5f);  // every gradient element must be overwritten
    float* dq = grads.data() + (q_ - qkv_.data());
    float* dk = grads.data() + (k_ - qkv_.data());
    float* dv = grads.data() + (v_ - qkv_.data());
    cpu::attention_backward(plan_, shape_, q_, k_, v_, out_.data(), lse_.data(), dout_.data(), dq, dk, dv);

    const std::vector<double> q = packed(q_, qs(), c_.Dk), k = packed(k_, qs(), c_.Dk), v = packed(v_, vs(), c_.Dv);
    const Reference ref = reference(q, k, v, true);
    const int64_t n_keys = c_.T;
    // Worst-case fp32 error of the op: every score is a Dk-term dot product, every
    // output a sum over at most T keys, every gradient a sum over at most T pairs of
    // Dk- and Dv-term products; the error is at most (Dk + Dv + T) * u times the
    // magnitude of the terms. k = 2 for headroom over that bound.
    const double bound = 2.0 * kUnitRoundoff * (c_.Dk + c_.Dv + n_keys);
    expect_close("out", packed(out_.data(), v_width_, c_.Dv), ref.out, bound * 8.0);
    std::vector<double> lse_op(lse_.begin(), lse_.end());
    expect_close("lse", lse_op, ref.lse, bound * 8.0);
    const double grad_bound = bound * 8.0 * 8.0;
    expect_close("dq", packed(dq, qs(), c_.Dk), ref.dq, grad_bound);
    expect_close("dk", packed(dk, qs(), c_.Dk), ref.dk, grad_bound);
    expect_close("dv", packed(dv, vs(), c_.Dv), ref.dv, grad_bound);

    if (!check_fd) return;
    // Central differences of the double reference loss sum(dout * out), on a sample of
    // input elements; step h = 1e-4 makes the truncation error ~h^2 = 1e-8, far below
    // the fp32 tolerance the op's gradients are held to.
    auto loss = [&](const std::vector<double>& qq, const std::vector<double>& kk, const std::vector<double>& vv) {
      const Reference r = reference(qq, kk, vv, false);
      double total = 0;
      for (size_t e = 0; e < r.out.size(); ++e) total += dout_[e] * r.out[e];
      return total;
    };
    const std::vector<double> op_dq = packed(dq, qs(), c_.Dk), op_dk = packed(dk, qs(), c_.Dk),
                              op_dv = packed(dv, vs(), c_.Dv);
    const double step = 1e-4;
    auto check = [&](const char* name, int which, const std::vector<double>& op_grad) {
      for (size_t e = 0; e < op_grad.size(); e += std::max<size_t>(1, op_grad.size() / 23)) {
        std::vector<double> plus[3] = {q, k, v}, minus[3] = {q, k, v};
        plus[which][e] += step;
        minus[which][e] -= step;
        const double fd = (loss(plus[0], plus[1], plus[2]) - loss(minus[0], minus[1], minus[2])) / (2 * step);
        EXPECT_NEAR(op_grad[e], fd, grad_bound * (1.0 + std::fabs(fd)) + 1e-7) << name << "[" << e << "]";
      }
    };
    check("dq", 0, op_dq);
    check("dk", 1, op_dk);
    check("dv", 2, op_dv);
  }

  void expect_close(const char* name, const std::vector<double>& got, const std::vector<double>& want, double rel) {
    ASSERT_EQ(got.size(), want.size());
    double magnitude = 1.0;
    for (double w : want)
      if (std::isfinite(w)) magnitude = std::max(magnitude, std::fabs(w));
    for (size_t e = 0; e < got.size(); ++e) {
      if (std::isinf(want[e])) {
        ASSERT_TRUE(std::isinf(got[e]) && got[e] < 0) << name << "[" << e << "] should be -inf";
        continue;
      }
      ASSERT_TRUE(std::isfinite(got[e])) << name << "[" << e << "] = " << got[e];
      ASSERT_NEAR(got[e], want[e], rel * magnitude)
          << name << "[" << e << "] " << pattern_.describe() << " T " << c_.T << " Dk " << c_.Dk;
    }
  }

 private:
  Case c_;
  Pattern pattern_;
  AttentionPlan plan_;
  AttentionShape shape_;
  int64_t qk_width_ = 0, v_width_ = 0;
  std::vector<float> qkv_, out_, lse_, dout_;
  const float* q_ = nullptr;
  const float* k_ = nullptr;
  const float* v_ = nullptr;
};

std::vector<PatternSpec> specs_for_heads(int heads) {
  std::vector<PatternSpec> specs = {{PatternKind::dense, 1, 1, 1, CombineMode::merged, heads},
                                    {PatternKind::local, 5, 1, 1, CombineMode::merged, heads}};
  for (CombineMode mode : {CombineMode::merged, CombineMode::interleaved, CombineMode::heads}) {
    if (mode == CombineMode::heads && heads < 2) continue;
    specs.push_back({PatternKind::strided, 6, 1, 1, mode, heads});
    specs.push_back({PatternKind::fixed, 8, 2, std::min(heads, 2), mode, heads});
  }
  return specs;
}

TEST(Attention, MatchesReferenceEveryPatternAndMode) {
  for (int heads : {1, 2}) {
    for (const PatternSpec& spec : specs_for_heads(heads)) {
      for (int layer : {0, 1}) {
        for (int64_t T : {1, 5, 29}) {
          AttentionFixture({spec, layer, 2, T, 16, 16, false}).run_and_compare(false);
        }
      }
    }
  }
}

TEST(Attention, HeadDimsAndFusedLayout) {
  const PatternSpec fixed{PatternKind::fixed, 16, 4, 2, CombineMode::merged, 2};
  const PatternSpec strided{PatternKind::strided, 8, 1, 1, CombineMode::merged, 3};
  for (int D : {16, 32, 64, 128}) {
    AttentionFixture({fixed, 0, 1, 40, D, D, true}).run_and_compare(false);
    AttentionFixture({strided, 0, 1, 37, D, D, false}).run_and_compare(false);
  }
  AttentionFixture({fixed, 0, 2, 33, 8, 16, true}).run_and_compare(false);  // half-width q/k
}

// Long enough that rows span several key chunks, so the online rescaling is exercised.
TEST(Attention, LongRowsAcrossChunks) {
  const PatternSpec dense{PatternKind::dense, 1, 1, 1, CombineMode::merged, 1};
  const PatternSpec fixed{PatternKind::fixed, 64, 16, 1, CombineMode::merged, 1};
  AttentionFixture({dense, 0, 1, 1100, 16, 16, false}).run_and_compare(false);
  AttentionFixture({fixed, 0, 1, 1100, 16, 16, true}).run_and_compare(false);
}

TEST(Attention, GradientsMatchFiniteDifferences) {
  for (const PatternSpec& spec : specs_for_heads(2))
    AttentionFixture({spec, 1, 1, 13, 8, 8, true}).run_and_compare(true);
}

TEST(Attention, RejectsMismatchedPlan) {
  const Pattern pattern({PatternKind::dense, 1, 1, 1, CombineMode::merged, 2});
  AttentionShape shape;
  shape.H = 3;
  shape.T = 4;
  std::vector<float> buf(1024);
  EXPECT_THROW(cpu::attention_forward(make_plan(pattern, 0), shape, buf.data(), buf.data(), buf.data(), buf.data(),
                                      buf.data()),
               Error);
}

}  // namespace
}  // namespace spt
