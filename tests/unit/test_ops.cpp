// The CPU ops of the model (linear, LayerNorm, GELU, embedding, cross-entropy,
// dropout) against straightforward double-precision loops, and their gradients
// against analytic double-precision formulas or central finite differences.
//
// Tolerances come from fp32 rounding: a sum of K fp32 products has an error of at most
// about K * u * sum|terms| (u = 2^-24), an elementwise op a few u relative.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "ops/activation.h"
#include "ops/cpu/vector_math.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "test_support.h"

namespace spt {
namespace {

constexpr double kU = testing_support::kUnitRoundoff;

std::vector<float> random_vector(size_t n, uint64_t key, float scale = 1.0f, float shift = 0.0f) {
  std::vector<float> v(n);
  for (size_t e = 0; e < n; ++e) v[e] = shift + scale * normal01(key, e);
  return v;
}

TEST(VectorMath, ExpWithinTwoUlpsOverTheFloatRange) {
  double worst = 0.0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f + 175.0f * static_cast<float>(i) / 200000.0f;
    const double exact = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(cpu::exp_vectorizable(x) - exact) / exact);
  }
  EXPECT_LT(worst, 2 * kU * 2);  // two ulps (an ulp is at most 2u relative)
  EXPECT_TRUE(std::isnan(cpu::exp_vectorizable(NAN)));
  EXPECT_GT(cpu::exp_vectorizable(-1000.0f), 0.0f);
  EXPECT_LT(cpu::exp_vectorizable(-1000.0f), 1e-37f);
  EXPECT_TRUE(std::isfinite(cpu::exp_vectorizable(1000.0f)));
}

// Reference products in double; also the sum of |terms| that bounds the fp32 error.
struct Dot {
  double value = 0, magnitude = 0;
  void add(double a, double b) {
    value += a * b;
    magnitude += std::abs(a * b);
  }
};

TEST(Linear, ForwardAndBackwardMatchDoubleLoops) {
  const int64_t N = 37;
  const int in = 23, out = 19;
  const auto x = random_vector(N * in, 1), W = random_vector(out * in, 2), b = random_vector(out, 3);
  const auto dy = random_vector(N * out, 4);
  std::vector<float> y(N * out, NAN);
  cpu::linear_forward(x.data(), W.data(), b.data(), N, in, out, y.data());
  for (int64_t n = 0; n < N; ++n)
    for (int o = 0; o < out; ++o) {
      Dot d;
      d.add(b[o], 1.0);
      for (int i = 0; i < in; ++i) d.add(x[n * in + i], W[o * in + i]);
      ASSERT_NEAR(y[n * out + o], d.value, (in + 2) * kU * d.magnitude) << n << "," << o;
    }

  // dx overwritten, then accumulated; dweight and dbias added to what is there.
  std::vector<float> dx(N * in, NAN), dW(out * in, 0.5f), db(out, -0.25f);
  cpu::linear_backward(x.data(), W.data(), dy.data(), N, in, out, dx.data(), false, dW.data(), db.data());
  std::vector<float> dx_twice = dx;
  std::vector<float> dW_scratch(out * in, 0.0f);
  cpu::linear_backward(x.data(), W.data(), dy.data(), N, in, out, dx_twice.data(), true, dW_scratch.data(), nullptr);
  for (int64_t n = 0; n < N; ++n)
    for (int i = 0; i < in; ++i) {
      Dot d;
      for (int o = 0; o < out; ++o) d.add(dy[n * out + o], W[o * in + i]);
      ASSERT_NEAR(dx[n * in + i], d.value, (out + 1) * kU * d.magnitude);
      ASSERT_NEAR(dx_twice[n * in + i], 2 * d.value, 2 * (out + 2) * kU * d.magnitude);
    }
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i) {
      Dot d;
      d.add(0.5, 1.0);
      for (int64_t n = 0; n < N; ++n) d.add(dy[n * out + o], x[n * in + i]);
      ASSERT_NEAR(dW[o * in + i], d.value, (N + 2) * kU * d.magnitude);
    }
    Dot d;
    d.add(-0.25, 1.0);
    for (int64_t n = 0; n < N; ++n) d.add(dy[n * out + o], 1.0);
    ASSERT_NEAR(db[o], d.value, 2 * kU * d.magnitude);  // fp64 sum, one final rounding
  }
}

TEST(Linear, CountsMatrixProducts) {
  const auto x = random_vector(8 * 4, 1), W = random_vector(3 * 4, 2);
  std::vector<float> y(8 * 3);
  cpu::reset_matmul_stats();
  cpu::linear_forward(x.data(), W.data(), nullptr, 8, 4, 3, y.data());
  EXPECT_EQ(cpu::matmul_stats().calls, 1);
  EXPECT_EQ(cpu::matmul_stats().flops, 2.0 * 8 * 4 * 3);
  EXPECT_GE(cpu::matmul_stats().seconds, 0.0);
}

// LayerNorm of one row in double.
std::vector<double> layernorm_row(const double* x, const std::vector<float>& g, const std::vector<float>& b, int C) {
  double mean = 0, var = 0;
  for (int c = 0; c < C; ++c) mean += x[c];
  mean /= C;
  for (int c = 0; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);
  var /= C;
  const double rstd = 1.0 / std::sqrt(var + 1e-5);
  std::vector<double> y(C);
  for (int c = 0; c < C; ++c) y[c] = (x[c] - mean) * rstd * g[c] + b[c];
  return y;
}

TEST(LayerNorm, ForwardMatchesDoubleAndBackwardMatchesFiniteDifferences) {
  const int64_t N = 150;  // more than two blocks of the fixed-order parameter sums
  const int C = 24;
  const auto x = random_vector(N * C, 5, 2.0f, 0.7f), g = random_vector(C, 6, 0.5f, 1.0f);
  const auto b = random_vector(C, 7), dy = random_vector(N * C, 8);
  std::vector<float> y(N * C), mean(N), rstd(N);
  cpu::layernorm_forward(x.data(), g.data(), b.data(), N, C, y.data(), mean.data(), rstd.data());
  std::vector<double> row(C);
  for (int64_t n = 0; n < N; ++n) {
    for (int c = 0; c < C; ++c) row[c] = x[n * C + c];
    const auto expected = layernorm_row(row.data(), g, b, C);
    // normalized values are O(1); the fp32 statistics and products add a few u each.
    for (int c = 0; c < C; ++c)
      ASSERT_NEAR(y[n * C + c], expected[c], 8 * kU * (std::abs(expected[c] - b[c]) + std::abs(b[c]) + 1)) << n;
  }

  std::vector<float> dx(N * C, 3.0f), dg(C, 0.0f), db(C, 0.0f);
  cpu::layernorm_backward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(), N, C, dx.data(), true, dg.data(),
                          db.data());
  // dx by central differences of sum(dy * LN(x)) in double, row by row.
  const double eps = 1e-4;
  for (int64_t n = 0; n < N; n += 7)
    for (int c = 0; c < C; ++c) {
      for (int k = 0; k < C; ++k) row[k] = x[n * C + k];
      auto objective = [&](double shift) {
        row[c] = x[n * C + c] + shift;
        const auto out = layernorm_row(row.data(), g, b, C);
        double s = 0;
        for (int k = 0; k < C; ++k) s += dy[n * C + k] * out[k];
        return s;
      };
      const double fd = (objective(eps) - objective(-eps)) / (2 * eps);
      double scale = 0;  // size of the terms of dx: rstd * |dy * g|
      for (int k = 0; k < C; ++k) scale += std::abs(dy[n * C + k] * g[k]);
      ASSERT_NEAR(dx[n * C + c] - 3.0, fd, 4 * C * kU * rstd[n] * scale + 1e-6) << n << "," << c;
    }
  for (int c = 0; c < C; ++c) {
    Dot dgamma, dbeta;
    for (int64_t n = 0; n < N; ++n) {
      for (int k = 0; k < C; ++k) row[k] = x[n * C + k];
      std::vector<float> unit(C, 1.0f), zero(C, 0.0f);
      const auto xhat = layernorm_row(row.data(), unit, zero, C);
      dgamma.add(dy[n * C + c], xhat[c]);
      dbeta.add(dy[n * C + c], 1.0);
    }
    EXPECT_NEAR(dg[c], dgamma.value, 8 * kU * dgamma.magnitude + 1e-6);
    EXPECT_NEAR(db[c], dbeta.value, 2 * kU * dbeta.magnitude);
  }
}

double gelu_double(double x) { return x / (1.0 + std::exp(-1.702 * x)); }

TEST(Gelu, ForwardMatchesDoubleAndBackwardMatchesFiniteDifferences) {
  auto x = random_vector(5000, 9, 4.0f);
  x.push_back(0.0f);
  x.push_back(-60.0f);
  x.push_back(60.0f);
  const int64_t n = static_cast<int64_t>(x.size());
  const auto dy = random_vector(n, 10);
  std::vector<float> y(n), dx(n);
  cpu::gelu_forward(x.data(), n, y.data());
  cpu::gelu_backward(x.data(), dy.data(), n, dx.data());
  for (int64_t e = 0; e < n; ++e) {
    const double xe = x[e];
    ASSERT_NEAR(y[e], gelu_double(xe), 8 * kU * std::abs(xe) + 1e-30) << xe;
    const double eps = 1e-5 * std::max(1.0, std::abs(xe));
    const double slope = (gelu_double(xe + eps) - gelu_double(xe - eps)) / (2 * eps);
    // gelu' is at most about 1.1 in size and its terms are O(1 + 1.702|x| s(1 - s)).
    ASSERT_NEAR(dx[e], dy[e] * slope, 16 * kU * std::abs(dy[e]) * (1 + std::abs(xe)) + 1e-9) << xe;
  }
}

// Decoding embeds one position of every sequence: the rows of the whole forward, bit for bit.
TEST(Embedding, ForwardPositionGivesTheRowsOfTheWholeForward) {
  const int B = 3, C = 12;
  const int64_t T = 12;
  const std::vector<int> pos_sizes = {3, 4};
  std::vector<uint8_t> tokens(B * T);
  for (size_t e = 0; e < tokens.size(); ++e) tokens[e] = static_cast<uint8_t>(uniform_int(21, e, 256));
  const auto tok = random_vector(256 * C, 22);
  const auto rows = random_vector(3 * C, 23), cols = random_vector(4 * C, 24);
  const std::vector<const float*> tables = {rows.data(), cols.data()};
  std::vector<float> h(B * T * C);  // (B, T, C)
  cpu::embedding_forward(tokens.data(), B, T, C, tok.data(), tables, pos_sizes, h.data());
  std::vector<uint8_t> previous(B);
  std::vector<float> row(B * C);  // (B, C)
  for (int64_t t = 0; t < T; ++t) {
    for (int b = 0; b < B; ++b) previous[b] = t > 0 ? tokens[b * T + t - 1] : 0;
    cpu::embedding_forward_position(previous.data(), B, t, C, tok.data(), tables, pos_sizes, row.data());
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < C; ++c) ASSERT_EQ(row[b * C + c], h[(b * T + t) * C + c]) << b << "," << t << "," << c;
  }
  EXPECT_THROW(cpu::embedding_forward_position(previous.data(), B, -1, C, tok.data(), tables, pos_sizes, row.data()),
               Error);
}

TEST(Embedding, ForwardAndBackwardMatchLoops) {
  const int B = 3, C = 20;
  const int64_t T = 30;
  const std::vector<int> pos_sizes = {3, 5, 2};  // product 30
  std::vector<uint8_t> tokens(B * T);
  for (size_t e = 0; e < tokens.size(); ++e) tokens[e] = static_cast<uint8_t>(uniform_int(11, e, 256));
  const auto tok = random_vector(256 * C, 12);
  std::vector<std::vector<float>> tables;
  std::vector<const float*> table_ptrs;
  for (size_t k = 0; k < pos_sizes.size(); ++k) tables.push_back(random_vector(pos_sizes[k] * C, 13 + k));
  for (const auto& t : tables) table_ptrs.push_back(t.data());
  std::vector<float> h(B * T * C);
  cpu::embedding_forward(tokens.data(), B, T, C, tok.data(), table_ptrs, pos_sizes, h.data());
  for (int b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      // raster coordinates with the last table fastest: t = (i * 5 + j) * 2 + k
      const int64_t coord[3] = {t / 10, (t / 2) % 5, t % 2};
      for (int c = 0; c < C; ++c) {
        double expected = t > 0 ? tok[tokens[b * T + t - 1] * C + c] : 0.0;
        for (int k = 0; k < 3; ++k) expected += tables[k][coord[k] * C + c];
        ASSERT_NEAR(h[(b * T + t) * C + c], expected, 4 * kU * 4) << b << "," << t;
      }
    }
  EXPECT_EQ(position_coordinate(pos_sizes, 0, 29), 2);
  EXPECT_EQ(position_coordinate(pos_sizes, 1, 29), 4);

  const auto dh = random_vector(B * T * C, 20);
  std::vector<float> dtok(256 * C, 1.0f);
  std::vector<std::vector<float>> dtables;
  std::vector<float*> dtable_ptrs;
  for (int size : pos_sizes) dtables.emplace_back(size * C, 0.0f);
  for (auto& t : dtables) dtable_ptrs.push_back(t.data());
  cpu::embedding_backward(tokens.data(), B, T, C, dh.data(), dtok.data(), dtable_ptrs, pos_sizes);
  std::vector<double> ref_tok(256 * C, 1.0);
  std::vector<std::vector<double>> ref_tables;
  for (int size : pos_sizes) ref_tables.emplace_back(size * C, 0.0);
  for (int b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t coord[3] = {t / 10, (t / 2) % 5, t % 2};
      for (int c = 0; c < C; ++c) {
        const double g = dh[(b * T + t) * C + c];
        if (t > 0) ref_tok[tokens[b * T + t - 1] * C + c] += g;
        for (int k = 0; k < 3; ++k) ref_tables[k][coord[k] * C + c] += g;
      }
    }
  // fp64 sums: one final rounding of values of size at most B*T*max|dh|.
  for (size_t e = 0; e < ref_tok.size(); ++e) ASSERT_NEAR(dtok[e], ref_tok[e], kU * std::abs(ref_tok[e]) + 1e-12);
  for (int k = 0; k < 3; ++k)
    for (size_t e = 0; e < ref_tables[k].size(); ++e)
      ASSERT_NEAR(dtables[k][e], ref_tables[k][e], kU * std::abs(ref_tables[k][e]) + 1e-12);
}

TEST(CrossEntropy, LossAndGradientMatchDouble) {
  const int64_t N = 300;
  const int V = 256;
  const auto logits = random_vector(N * V, 21, 3.0f, 5.0f);
  std::vector<uint8_t> targets(N);
  for (int64_t n = 0; n < N; ++n) targets[n] = static_cast<uint8_t>(uniform_int(22, n, 256));
  std::vector<float> losses(N), losses2(N), dlogits = logits;  // in place
  const float grad_scale = 0.37f;
  const double total = cpu::cross_entropy_forward(logits.data(), targets.data(), N, V, losses.data());
  const double total2 = cpu::cross_entropy_forward_backward(dlogits.data(), targets.data(), N, V, grad_scale,
                                                            losses2.data(), dlogits.data());
  double expected_total = 0;
  for (int64_t n = 0; n < N; ++n) {
    const float* row = logits.data() + n * V;
    double mx = row[0], z = 0;
    for (int v = 0; v < V; ++v) mx = std::max<double>(mx, row[v]);
    for (int v = 0; v < V; ++v) z += std::exp(row[v] - mx);
    const double loss = mx + std::log(z) - row[targets[n]];
    expected_total += loss;
    // log-sum-exp of O(10) logits: a few u of the logits' size
    ASSERT_NEAR(losses[n], loss, 8 * kU * (std::abs(mx) + 1)) << n;
    ASSERT_EQ(losses[n], losses2[n]);
    for (int v = 0; v < V; ++v) {
      const double p = std::exp(row[v] - mx) / z;
      const double expected = grad_scale * (p - (v == targets[n] ? 1.0 : 0.0));
      // exp of (logit - max) is good to a few u relative to 1 ulp of the logits' size
      ASSERT_NEAR(dlogits[n * V + v], expected, grad_scale * (8 * kU * (std::abs(mx) + 1) * p + 4 * kU)) << n << "," << v;
    }
  }
  EXPECT_NEAR(total, expected_total, 8 * kU * N * 10);
  EXPECT_EQ(total, total2);
}

TEST(CrossEntropy, NonFiniteLogitsGiveNonFiniteLossWithoutThrowing) {
  std::vector<float> logits(2 * 256, 0.0f);
  logits[3] = NAN;
  const uint8_t targets[2] = {1, 2};
  std::vector<float> losses(2);
  const double total = cpu::cross_entropy_forward(logits.data(), targets, 2, 256, losses.data());
  EXPECT_FALSE(std::isfinite(total));
  EXPECT_NEAR(losses[1], std::log(256.0), 1e-5);
}

TEST(Dropout, MaskIsTheDocumentedCounterStream) {
  const int64_t n = 1003;  // not a multiple of four
  const float p = 0.3f;
  const uint64_t key = dropout_key(5, 7, 2, 1);
  EXPECT_EQ(key, rng_key(5, 7, 2, 1));
  EXPECT_NE(key, dropout_key(5, 7, 2, 0));
  const auto x = random_vector(n, 30), residual = random_vector(n, 31);
  std::vector<float> masked = x, added(n);
  cpu::dropout_apply(key, p, n, masked.data());
  cpu::dropout_add(key, p, x.data(), residual.data(), n, added.data());
  int64_t kept = 0;
  for (int64_t e = 0; e < n; ++e) {
    const bool keep = uniform01(key, e) >= p;
    kept += keep;
    const float expected = keep ? x[e] * (1.0f / (1.0f - p)) : 0.0f;
    ASSERT_EQ(masked[e], expected) << e;
    // one rounding, or none where the compiler fuses the multiply-add
    ASSERT_NEAR(added[e], residual[e] + expected, 2 * kU * (std::abs(residual[e]) + std::abs(expected))) << e;
  }
  // 1003 draws at keep rate 0.7: the standard deviation of the count is about 14.5.
  EXPECT_NEAR(static_cast<double>(kept), 0.7 * n, 5 * 14.5);
  std::vector<float> plain(n);
  cpu::dropout_add(key, 0.0f, x.data(), residual.data(), n, plain.data());
  for (int64_t e = 0; e < n; ++e) ASSERT_EQ(plain[e], residual[e] + x[e]);
  EXPECT_THROW(cpu::dropout_apply(key, 1.0f, n, masked.data()), Error);
}

}  // namespace
}  // namespace spt
