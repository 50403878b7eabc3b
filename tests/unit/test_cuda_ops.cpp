// The CUDA op families other than matmul, attention and the optimizer's whole-buffer ops
// (GELU, dropout, LayerNorm, cross-entropy, embedding) against their CPU versions on
// random inputs, for fp32, bf16 and fp16 activations. Tolerances, sentinels and the
// repeat check: cuda_ops_test_util.h.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "ops/activation.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/cuda/optimizer.h"

#ifdef SPT_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/config.h"
#include "cuda_ops_test_util.h"
#include "cuda_test_util.h"

namespace spt {
namespace {

using namespace cuda_ops_test;

TEST(CudaOps, GeluForwardAndBackward) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (DType dtype : kTypes)
    for (int64_t n : {1, 3, 1001, 4096, 100003})
      for (size_t offset : {0, 1}) {
        const std::string context = message("n ", n, ", offset ", offset, ", ", cuda::dtype_name(dtype));
        const size_t count = static_cast<size_t>(n);
        const std::vector<float> x = random_values(count, dtype, 2.0), dy = random_values(count, dtype);
        std::vector<float> y_ref(count), dx_ref(count);
        cpu::gelu_forward(x.data(), n, y_ref.data());
        cpu::gelu_backward(x.data(), dy.data(), n, dx_ref.data());

        DeviceArray x_dev(dtype, count, offset), dy_dev(dtype, count, offset);
        x_dev.upload(x);
        dy_dev.upload(dy);
        DeviceArray y1(dtype, count, offset), y2(dtype, count, offset), dx1(dtype, count, offset),
            dx2(dtype, count, offset);
        for (DeviceArray* y : {&y1, &y2}) cuda::gelu_forward(x_dev.data(), n, dtype, y->data());
        for (DeviceArray* dx : {&dx1, &dx2}) cuda::gelu_backward(x_dev.data(), dy_dev.data(), n, dtype, dx->data());
        // In place: y over x, dx over dy.
        DeviceArray in_place(dtype, count, offset), grad_in_place(dtype, count, offset);
        in_place.upload(x);
        grad_in_place.upload(dy);
        cuda::gelu_forward(in_place.data(), n, dtype, in_place.data());
        cuda::gelu_backward(x_dev.data(), grad_in_place.data(), n, dtype, grad_in_place.data());
        sync();

        const auto y = y1.download(), dx = dx1.download();
        compare("gelu y", context, dtype, y, y_ref, [&](size_t e) { return 16 * kU * std::fabs(y_ref[e]) + 1e-37; });
        compare("gelu dx", context, dtype, dx, dx_ref, [&](size_t e) {
          const double s = 1.0 / (1.0 + std::exp(-1.702 * x[e]));
          return 16 * kU * std::fabs(dy[e]) * (s + 1.702 * std::fabs(x[e]) * s * (1 - s)) + 1e-37;
        });
        expect_same_bits(y, y2.download(), "gelu y", context);
        expect_same_bits(dx, dx2.download(), "gelu dx", context);
        EXPECT_TRUE(in_place.download().raw == y.raw) << "gelu y in place (" << context << ") differs";
        EXPECT_TRUE(grad_in_place.download().raw == dx.raw) << "gelu dx in place (" << context << ") differs";
      }
}

TEST(CudaOps, DropoutMaskEqualsTheCpuMask) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (float p : {0.1f, 0.5f, 0.9f})
    for (int64_t n : {1, 5, 1003, 65537}) {
      const std::string context = message("p ", p, ", n ", n);
      const uint64_t key = dropout_key(next_seed(), 12, 3, 1);
      const size_t count = static_cast<size_t>(n);
      std::vector<float> want(count, 1.0f);
      cpu::dropout_apply(key, p, n, want.data());
      DeviceArray x(DType::f32, count);
      x.upload(std::vector<float>(count, 1.0f));
      cuda::dropout_apply(key, p, n, DType::f32, x.data());
      sync();
      const auto got = x.download();
      int64_t mismatches = 0, kept = 0;
      for (size_t e = 0; e < count; ++e) {
        if (std::memcmp(&got.values[e], &want[e], 4) != 0) ++mismatches;
        if (want[e] != 0.0f) ++kept;
      }
      EXPECT_EQ(mismatches, 0) << context << ": the device mask differs from the CPU's";
      EXPECT_EQ(got.touched, 0) << context << ": guard written";
      if (n == 65537) {
        EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - p, 0.02) << context;
      }
    }
}

TEST(CudaOps, DropoutApplyAndAdd) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (DType dtype : kTypes)
    for (float p : {0.0f, 0.3f})
      for (int64_t n : {1, 7, 4096, 10001})
        for (size_t offset : {0, 1}) {
          const std::string context = message("p ", p, ", n ", n, ", offset ", offset, ", ", cuda::dtype_name(dtype));
          const uint64_t key = dropout_key(next_seed(), 4, 0, 0);
          const size_t count = static_cast<size_t>(n);
          const std::vector<float> x = random_values(count, dtype), residual = random_values(count, DType::f32);
          const float keep_scale = 1.0f / (1.0f - p);

          // Apply, in place (rounding the product to the type is the only difference).
          std::vector<float> applied(x);
          cpu::dropout_apply(key, p, n, applied.data());
          DeviceArray a1(dtype, count, offset), a2(dtype, count, offset);
          a1.upload(x);
          a2.upload(x);
          cuda::dropout_apply(key, p, n, dtype, a1.data());
          cuda::dropout_apply(key, p, n, dtype, a2.data());

          // Add, into a separate output and into the residual itself.
          std::vector<float> sum_ref(count);
          cpu::dropout_add(key, p, x.data(), residual.data(), n, sum_ref.data());
          DeviceArray x_dev(dtype, count, offset), res_dev(DType::f32, count, offset), out(DType::f32, count, offset),
              res_in_place(DType::f32, count, offset);
          x_dev.upload(x);
          res_dev.upload(residual);
          res_in_place.upload(residual);
          cuda::dropout_add(key, p, x_dev.data(), dtype, res_dev.floats(), n, out.floats());
          cuda::dropout_add(key, p, x_dev.data(), dtype, res_in_place.floats(), n, res_in_place.floats());
          sync();

          const auto got_applied = a1.download();
          compare_exact("dropout_apply", context, dtype, got_applied, applied);
          expect_same_bits(got_applied, a2.download(), "dropout_apply", context);
          // The CPU may fuse the multiply-add (one rounding less): one rounding of each term.
          const auto got_sum = out.download();
          compare("dropout_add", context, DType::f32, got_sum, sum_ref, [&](size_t e) {
            return 2 * kU * (std::fabs(sum_ref[e]) + std::fabs(x[e] * keep_scale));
          });
          EXPECT_TRUE(res_in_place.download().raw == got_sum.raw) << "dropout_add in place (" << context << ") differs";

          // Convert and mask in one pass: the bits of convert_from_f32 then dropout_apply.
          const std::vector<float> wide = random_values(count, DType::f32);
          DeviceArray source(DType::f32, count, offset), fused(dtype, count, offset), stepwise(dtype, count, offset);
          source.upload(wide);
          cuda::dropout_convert(key, p, source.floats(), n, dtype, fused.data());
          cuda::convert_from_f32(source.floats(), n, dtype, stepwise.data());
          cuda::dropout_apply(key, p, n, dtype, stepwise.data());
          sync();
          const auto got_fused = fused.download();
          expect_same_bits(got_fused, stepwise.download(), "dropout_convert", context);
          EXPECT_EQ(got_fused.touched, 0) << context << ": dropout_convert wrote its guard";
        }
}

// LayerNorm forward and backward on one shape; the backward starts from the CPU
// forward's statistics so both sides differentiate the same numbers.
void run_layernorm(int64_t N, int C, DType dtype, bool accumulate_dx) {
  const std::string context =
      message("N ", N, ", C ", C, ", ", cuda::dtype_name(dtype), accumulate_dx ? ", accumulate dx" : "");
  SCOPED_TRACE(context);
  const size_t count = static_cast<size_t>(N) * C, columns = static_cast<size_t>(C), rows = static_cast<size_t>(N);
  const std::vector<float> x = random_values(count, DType::f32, 1.5, 0.3);
  const std::vector<float> weight = random_values(columns, DType::f32, 0.1, 1.0);
  const std::vector<float> bias = random_values(columns, DType::f32, 0.1);
  const std::vector<float> dy = random_values(count, dtype);
  const std::vector<float> dx_old = random_values(count, DType::f32);
  const std::vector<float> dweight_old = random_values(columns, DType::f32), dbias_old = random_values(columns, DType::f32);

  std::vector<float> y_ref(count), mean_ref(rows), rstd_ref(rows);
  cpu::layernorm_forward(x.data(), weight.data(), bias.data(), N, C, y_ref.data(), mean_ref.data(), rstd_ref.data());
  std::vector<float> dx_ref = accumulate_dx ? dx_old : std::vector<float>(count, 0.0f);
  std::vector<float> dweight_ref(dweight_old), dbias_ref(dbias_old);
  cpu::layernorm_backward(x.data(), weight.data(), mean_ref.data(), rstd_ref.data(), dy.data(), N, C, dx_ref.data(),
                          accumulate_dx, dweight_ref.data(), dbias_ref.data());

  DeviceArray x_dev(DType::f32, count), w_dev(DType::f32, columns), b_dev(DType::f32, columns);
  x_dev.upload(x);
  w_dev.upload(weight);
  b_dev.upload(bias);
  DeviceArray y1(dtype, count), y2(dtype, count), mean1(DType::f32, rows), mean2(DType::f32, rows),
      rstd1(DType::f32, rows), rstd2(DType::f32, rows);
  cuda::layernorm_forward(x_dev.floats(), w_dev.floats(), b_dev.floats(), N, C, dtype, y1.data(), mean1.floats(),
                          rstd1.floats());
  cuda::layernorm_forward(x_dev.floats(), w_dev.floats(), b_dev.floats(), N, C, dtype, y2.data(), mean2.floats(),
                          rstd2.floats());

  DeviceArray mean_in(DType::f32, rows), rstd_in(DType::f32, rows), dy_dev(dtype, count);
  mean_in.upload(mean_ref);
  rstd_in.upload(rstd_ref);
  dy_dev.upload(dy);
  struct Outputs {
    DeviceArray dx, dweight, dbias;
  };
  std::vector<Outputs> outs;
  for (int run = 0; run < 2; ++run) {
    outs.push_back({DeviceArray(DType::f32, count), DeviceArray(DType::f32, columns), DeviceArray(DType::f32, columns)});
    Outputs& o = outs.back();
    if (accumulate_dx) o.dx.upload(dx_old);
    o.dweight.upload(dweight_old);
    o.dbias.upload(dbias_old);
    cuda::layernorm_backward(x_dev.floats(), w_dev.floats(), mean_in.floats(), rstd_in.floats(), dy_dev.data(), N, C,
                             dtype, o.dx.floats(), accumulate_dx, o.dweight.floats(), o.dbias.floats());
  }
  sync();

  // Forward. mean and rstd come from fp64 sums of different order: they may differ by
  // one rounding plus the fp64 error of a sum of C terms of size |x|.
  std::vector<double> row_abs(rows, 0.0);
  for (size_t n = 0; n < rows; ++n)
    for (size_t c = 0; c < columns; ++c) row_abs[n] = std::max(row_abs[n], static_cast<double>(std::fabs(x[n * C + c])));
  const auto y = y1.download(), mean = mean1.download(), rstd = rstd1.download();
  compare("layernorm mean", context, DType::f32, mean, mean_ref,
          [&](size_t n) { return 2 * kU * std::fabs(mean_ref[n]) + 4 * C * kU64 * row_abs[n]; });
  compare("layernorm rstd", context, DType::f32, rstd, rstd_ref, [&](size_t n) { return 4 * kU * rstd_ref[n]; });
  compare("layernorm y", context, dtype, y, y_ref, [&](size_t e) {
    const size_t n = e / C, c = e % C;
    const double xhat = (x[e] - mean_ref[n]) * static_cast<double>(rstd_ref[n]);
    return 8 * kU * (std::fabs(xhat * weight[c]) + std::fabs(bias[c]) + rstd_ref[n] * std::fabs(weight[c] * mean_ref[n])) +
           rstd_ref[n] * std::fabs(weight[c]) * 4 * C * kU64 * row_abs[n];
  });
  expect_same_bits(y, y2.download(), "layernorm y", context);
  expect_same_bits(mean, mean2.download(), "layernorm mean", context);
  expect_same_bits(rstd, rstd2.download(), "layernorm rstd", context);

  // Backward: dx with the row means of g = dy w and g xhat; parameter gradients are fp64
  // sums over N rows.
  std::vector<double> mean_g(rows, 0.0), mean_gx(rows, 0.0), dw_abs(columns, 0.0), db_abs(columns, 0.0);
  for (size_t n = 0; n < rows; ++n) {
    for (size_t c = 0; c < columns; ++c) {
      const size_t e = n * C + c;
      const double xhat = (x[e] - mean_ref[n]) * static_cast<double>(rstd_ref[n]);
      mean_g[n] += static_cast<double>(dy[e]) * weight[c] / C;
      mean_gx[n] += static_cast<double>(dy[e]) * weight[c] * xhat / C;
      dw_abs[c] += std::fabs(dy[e] * xhat);
      db_abs[c] += std::fabs(dy[e]);
    }
  }
  const auto dx = outs[0].dx.download(), dweight = outs[0].dweight.download(), dbias = outs[0].dbias.download();
  compare("layernorm dx", context, DType::f32, dx, dx_ref, [&](size_t e) {
    const size_t n = e / C, c = e % C;
    const double xhat = (x[e] - mean_ref[n]) * static_cast<double>(rstd_ref[n]);
    const double terms = std::fabs(dy[e] * weight[c]) + std::fabs(mean_g[n]) + std::fabs(xhat * mean_gx[n]);
    return 8 * kU * (rstd_ref[n] * terms + std::fabs(dx_ref[e]) + (accumulate_dx ? std::fabs(dx_old[e]) : 0.0));
  });
  compare("layernorm dweight", context, DType::f32, dweight, dweight_ref,
          [&](size_t c) { return 2 * kU * std::fabs(dweight_ref[c]) + 4 * N * kU64 * dw_abs[c]; });
  compare("layernorm dbias", context, DType::f32, dbias, dbias_ref,
          [&](size_t c) { return 2 * kU * std::fabs(dbias_ref[c]) + 4 * N * kU64 * db_abs[c]; });
  expect_same_bits(dx, outs[1].dx.download(), "layernorm dx", context);
  expect_same_bits(dweight, outs[1].dweight.download(), "layernorm dweight", context);
  expect_same_bits(dbias, outs[1].dbias.download(), "layernorm dbias", context);
}

TEST(CudaOps, LayerNorm) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (DType dtype : kTypes) {
    run_layernorm(1, 40, dtype, false);
    run_layernorm(3, 1, dtype, true);
    run_layernorm(7, 1000, dtype, true);
    run_layernorm(300, 64, dtype, false);
    run_layernorm(129, 513, dtype, true);
    run_layernorm(200, 512, dtype, true);  // the presets' widest rows
    run_layernorm(65, 100, dtype, false);
  }
  run_layernorm(70001, 40, DType::f32, false);  // more than 1024 chunks of 64 rows
  run_layernorm(70001, 40, DType::bf16, true);
}

void run_cross_entropy(int64_t N, int V, DType dtype, float grad_scale) {
  const std::string context = message("N ", N, ", V ", V, ", ", cuda::dtype_name(dtype), ", grad_scale ", grad_scale);
  SCOPED_TRACE(context);
  const size_t count = static_cast<size_t>(N) * V, rows = static_cast<size_t>(N);
  const std::vector<float> logits = random_values(count, DType::f32, 3.0);
  std::vector<uint8_t> targets(rows);
  const uint64_t key = rng_key(next_seed(), 0x74);
  for (size_t n = 0; n < rows; ++n) targets[n] = static_cast<uint8_t>(uniform_int(key, n, 256));
  std::vector<float> losses_ref(rows), dlogits_ref(count);
  cpu::cross_entropy_forward_backward(logits.data(), targets.data(), N, V, grad_scale, losses_ref.data(),
                                      dlogits_ref.data());

  DeviceArray logits_dev(DType::f32, count);
  logits_dev.upload(logits);
  DeviceBuffer<uint8_t> targets_dev(rows);
  targets_dev.upload(targets.data(), rows);
  DeviceArray losses1(DType::f32, rows), losses2(DType::f32, rows), losses_only(DType::f32, rows);
  DeviceArray d1(dtype, count), d2(dtype, count);
  cuda::cross_entropy(logits_dev.floats(), targets_dev.data(), N, V, grad_scale, losses1.floats(), dtype, d1.data());
  cuda::cross_entropy(logits_dev.floats(), targets_dev.data(), N, V, grad_scale, losses2.floats(), dtype, d2.data());
  cuda::cross_entropy(logits_dev.floats(), targets_dev.data(), N, V, grad_scale, losses_only.floats(), dtype, nullptr);
  DeviceArray in_place(DType::f32, count);  // fp32 dlogits over the logits
  in_place.upload(logits);
  if (dtype == DType::f32)
    cuda::cross_entropy(in_place.floats(), targets_dev.data(), N, V, grad_scale, nullptr, DType::f32,
                        in_place.floats());
  sync();

  const auto losses = losses1.download(), d = d1.download();
  // exp is within a few ulps on both sides: the fp64 normalizer within 4u relative, its
  // log within 4u absolute; a gradient is two such factors and two roundings.
  compare("cross-entropy losses", context, DType::f32, losses, losses_ref,
          [&](size_t n) { return 4 * kU * std::fabs(losses_ref[n]) + 8 * kU; });
  compare("cross-entropy dlogits", context, dtype, d, dlogits_ref, [&](size_t e) {
    const bool target = static_cast<int>(e % V) == targets[e / V];
    return 16 * kU * (std::fabs(dlogits_ref[e]) + (target ? std::fabs(grad_scale) : 0.0)) + 1e-37;
  });
  expect_same_bits(losses, losses2.download(), "cross-entropy losses", context);
  expect_same_bits(losses, losses_only.download(), "cross-entropy losses without dlogits", context);
  expect_same_bits(d, d2.download(), "cross-entropy dlogits", context);
  if (dtype == DType::f32) {
    EXPECT_TRUE(in_place.download().raw == d.raw) << "in-place dlogits differ";
  }
}

TEST(CudaOps, CrossEntropy) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (DType dtype : kTypes) {
    run_cross_entropy(1, 256, dtype, 1.0f);
    run_cross_entropy(37, 256, dtype, 0.37f);
    run_cross_entropy(1000, 256, dtype, 1.0f / 1000);
    run_cross_entropy(5, 300, dtype, 2.5f);
  }
}

struct EmbeddingCase {
  int B;
  int64_t T;
  int C;
  std::vector<int> pos_sizes;
  bool skewed = false;  // almost every token the same (long sums for one gradient row)
};

void run_embedding(const EmbeddingCase& e) {
  std::string sizes;
  for (int s : e.pos_sizes) sizes += message(s, " ");
  const std::string context =
      message("B ", e.B, ", T ", e.T, ", C ", e.C, ", pos_sizes { ", sizes, "}", e.skewed ? ", skewed" : "");
  SCOPED_TRACE(context);
  const int tables = static_cast<int>(e.pos_sizes.size());
  const size_t rows = static_cast<size_t>(e.B) * e.T, C = static_cast<size_t>(e.C);
  std::vector<uint8_t> tokens(rows);
  const uint64_t key = rng_key(next_seed(), 0x656D62);
  for (size_t r = 0; r < rows; ++r)
    tokens[r] = static_cast<uint8_t>(e.skewed && r % 97 != 0 ? 32 : uniform_int(key, r, 256));
  const std::vector<float> tok_emb = random_values(kVocab * C, DType::f32);
  std::vector<std::vector<float>> pos(tables), dpos_old(tables);
  for (int k = 0; k < tables; ++k) {
    pos[k] = random_values(e.pos_sizes[k] * C, DType::f32);
    dpos_old[k] = random_values(e.pos_sizes[k] * C, DType::f32);
  }
  const std::vector<float> dh = random_values(rows * C, DType::f32), dtok_old = random_values(kVocab * C, DType::f32);

  std::vector<const float*> pos_ptrs;
  for (const auto& p : pos) pos_ptrs.push_back(p.data());
  std::vector<float> h_ref(rows * C);
  cpu::embedding_forward(tokens.data(), e.B, e.T, e.C, tok_emb.data(), pos_ptrs, e.pos_sizes, h_ref.data());
  std::vector<float> dtok_ref(dtok_old);
  std::vector<std::vector<float>> dpos_ref(dpos_old);
  std::vector<float*> dpos_ptrs;
  for (auto& p : dpos_ref) dpos_ptrs.push_back(p.data());
  cpu::embedding_backward(tokens.data(), e.B, e.T, e.C, dh.data(), dtok_ref.data(), dpos_ptrs, e.pos_sizes);
  // Sums of the magnitudes of the summed terms: the same backward on |dh| into zeros.
  std::vector<float> abs_dh(dh);
  for (float& x : abs_dh) x = std::fabs(x);
  std::vector<float> tok_abs(kVocab * C, 0.0f);
  std::vector<std::vector<float>> pos_abs(tables);
  std::vector<float*> pos_abs_ptrs;
  for (int k = 0; k < tables; ++k) {
    pos_abs[k].assign(e.pos_sizes[k] * C, 0.0f);
    pos_abs_ptrs.push_back(pos_abs[k].data());
  }
  cpu::embedding_backward(tokens.data(), e.B, e.T, e.C, abs_dh.data(), tok_abs.data(), pos_abs_ptrs, e.pos_sizes);

  DeviceBuffer<uint8_t> tokens_dev(rows);
  tokens_dev.upload(tokens.data(), rows);
  DeviceArray tok_dev(DType::f32, kVocab * C), dh_dev(DType::f32, rows * C);
  tok_dev.upload(tok_emb);
  dh_dev.upload(dh);
  std::vector<DeviceArray> pos_dev;
  for (int k = 0; k < tables; ++k) {
    pos_dev.emplace_back(DType::f32, pos[k].size());
    pos_dev.back().upload(pos[k]);
  }
  cuda::PositionTables pos_tables;
  pos_tables.count = tables;
  for (int k = 0; k < tables; ++k) {
    pos_tables.size[k] = e.pos_sizes[k];
    pos_tables.table[k] = pos_dev[k].floats();
  }
  DeviceArray h1(DType::f32, rows * C), h2(DType::f32, rows * C);
  cuda::embedding_forward(tokens_dev.data(), e.B, e.T, e.C, tok_dev.floats(), pos_tables, h1.floats());
  cuda::embedding_forward(tokens_dev.data(), e.B, e.T, e.C, tok_dev.floats(), pos_tables, h2.floats());

  struct Grads {
    DeviceArray tok;
    std::vector<DeviceArray> pos;
  };
  std::vector<Grads> grads;
  for (int run = 0; run < 2; ++run) {
    grads.push_back({DeviceArray(DType::f32, kVocab * C), {}});
    Grads& g = grads.back();
    g.tok.upload(dtok_old);
    cuda::PositionTables dpos;
    dpos.count = tables;
    for (int k = 0; k < tables; ++k) {
      g.pos.emplace_back(DType::f32, dpos_old[k].size());
      g.pos.back().upload(dpos_old[k]);
      dpos.size[k] = e.pos_sizes[k];
      dpos.table[k] = g.pos.back().floats();
    }
    cuda::embedding_backward(tokens_dev.data(), e.B, e.T, e.C, dh_dev.floats(), g.tok.floats(), dpos);
  }
  sync();

  const auto h = h1.download();
  compare_exact("embedding h", context, DType::f32, h, h_ref);
  expect_same_bits(h, h2.download(), "embedding h", context);
  // fp64 sums of up to B*T terms in another order, then one rounding to fp32 on each side.
  const double sum_rel = 4.0 * static_cast<double>(rows) * kU64;
  const auto dtok = grads[0].tok.download();
  compare("embedding dtok_emb", context, DType::f32, dtok, dtok_ref,
          [&](size_t i) { return 2 * kU * std::fabs(dtok_ref[i]) + sum_rel * tok_abs[i]; });
  expect_same_bits(dtok, grads[1].tok.download(), "embedding dtok_emb", context);
  for (int k = 0; k < tables; ++k) {
    const std::string what = message("embedding dpos_emb.", k);
    const auto dp = grads[0].pos[k].download();
    compare(what, context, DType::f32, dp, dpos_ref[k],
            [&](size_t i) { return 2 * kU * std::fabs(dpos_ref[k][i]) + sum_rel * pos_abs[k][i]; });
    expect_same_bits(dp, grads[1].pos[k].download(), what, context);
  }
}

TEST(CudaOps, Embedding) {
  SPT_REQUIRE_CUDA_DEVICE();
  run_embedding({1, 1, 40, {}});
  run_embedding({2, 7, 40, {4, 2}});
  run_embedding({4, 64, 1000, {8, 8, 1}});
  run_embedding({3, 3000, 40, {30, 100}});              // several position splits
  run_embedding({2, 40000, 24, {40, 10, 100}});         // the maximum number of splits
  run_embedding({2, 5000, 33, {7, 3}, true});           // tables wrap (7 * 3 < T); one token dominates
  run_embedding({1, 300, 260, {3, 5, 4, 5}, false});    // four tables, two column tiles
}

}  // namespace
}  // namespace spt

#endif  // SPT_HAVE_CUDA

#ifdef SPT_HAVE_CUDA
namespace spt {
namespace {

// Argument validation happens on the host before any device work, so it needs no GPU.
TEST(CudaOpsValidation, RejectsBadArguments) {
  float* fake = reinterpret_cast<float*>(uintptr_t{256});  // never dereferenced: every call throws first
  const uint8_t* tokens = reinterpret_cast<const uint8_t*>(fake);
  const auto bad_type = static_cast<cuda::DType>(7);
  EXPECT_THROW(cuda::layernorm_forward(fake, fake, fake, 0, 8, cuda::DType::f32, fake, fake, fake), Error);
  EXPECT_THROW(cuda::layernorm_forward(fake, fake, fake, 4, 0, cuda::DType::f32, fake, fake, fake), Error);
  EXPECT_THROW(cuda::layernorm_forward(fake, nullptr, fake, 4, 8, cuda::DType::f32, fake, fake, fake), Error);
  EXPECT_THROW(cuda::layernorm_forward(fake, fake, fake, 4, 8, bad_type, fake, fake, fake), Error);
  EXPECT_THROW(cuda::layernorm_backward(fake, fake, fake, fake, fake, 4, 8, cuda::DType::f32, nullptr, false, fake,
                                        fake),
               Error);
  EXPECT_THROW(cuda::gelu_forward(nullptr, 4, cuda::DType::f32, fake), Error);
  EXPECT_THROW(cuda::gelu_backward(fake, fake, -1, cuda::DType::f32, fake), Error);
  EXPECT_THROW(cuda::gelu_forward(fake, 4, bad_type, fake), Error);
  EXPECT_THROW(cuda::cross_entropy(fake, tokens, 4, 255, 1.0f, fake, cuda::DType::f32, fake), Error);
  EXPECT_THROW(cuda::cross_entropy(fake, tokens, 0, 256, 1.0f, fake, cuda::DType::f32, fake), Error);
  EXPECT_THROW(cuda::cross_entropy(fake, tokens, 4, 256, 1.0f, nullptr, cuda::DType::f32, nullptr), Error);
  EXPECT_THROW(cuda::cross_entropy(fake, tokens, 4, 256, 1.0f, fake, cuda::DType::bf16, fake), Error);  // overlap
  EXPECT_THROW(cuda::dropout_apply(1, 1.0f, 4, cuda::DType::f32, fake), Error);
  EXPECT_THROW(cuda::dropout_add(1, -0.1f, fake, cuda::DType::f32, fake, 4, fake), Error);
  cuda::PositionTables pos;
  pos.count = 5;
  EXPECT_THROW(cuda::embedding_forward(tokens, 1, 4, 8, fake, pos, fake), Error);
  pos.count = 1;
  pos.size[0] = 0;
  pos.table[0] = fake;
  EXPECT_THROW(cuda::embedding_backward(tokens, 1, 4, 8, fake, fake, pos), Error);
  pos.size[0] = 4;
  EXPECT_THROW(cuda::embedding_forward(tokens, 0, 4, 8, fake, pos, fake), Error);
  cuda::AdamWParams params;
  params.step = 0;
  EXPECT_THROW(cuda::adamw_step(nullptr, 0, 4, params, fake, fake, fake, fake, cuda::DType::f32, nullptr), Error);
  params.step = 1;
  params.beta1 = 1.0f;
  EXPECT_THROW(cuda::adamw_step(nullptr, 0, 4, params, fake, fake, fake, fake, cuda::DType::f32, nullptr), Error);
  params.beta1 = 0.9f;
  EXPECT_THROW(cuda::adamw_step(nullptr, 3, 4, params, fake, fake, fake, fake, cuda::DType::f32, nullptr), Error);
  EXPECT_THROW(cuda::sum_of_squares(nullptr, 4), Error);
  EXPECT_THROW(cuda::convert_from_f32(fake, 4, bad_type, fake), Error);
}

}  // namespace
}  // namespace spt
#endif  // SPT_HAVE_CUDA
