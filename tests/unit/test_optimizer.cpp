// AdamW against a double-precision re-implementation with an error bound propagated
// from fp32 storage; weight decay only on the linear layers' matrices; gradient norm
// and clipping, and their independence of the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "train/optimizer.h"
#include "test_support.h"

namespace spt {
namespace {

using testing_support::kUnitRoundoff;
using testing_support::small_strided_config;

// Gradients of varied scale per tensor, some exactly zero, fresh for every step.
void fill_gradients(Model& model, uint64_t step) {
  model.zero_grads();
  for (size_t t = 0; t < model.params().all().size(); ++t) {
    const ParamInfo& p = model.params().all()[t];
    const double scale = std::pow(10.0, static_cast<double>(t % 5) - 3.0);
    const uint64_t key = rng_key(step, t, 0x67726164);
    for (int64_t e = 0; e < p.size; ++e)
      model.grads()[p.offset + e] = e % 7 == 3 ? 0.0f : static_cast<float>(scale * normal01(key, e));
  }
}

// The linear layers' matrices by name (docs/MODEL.md), independent of ParamInfo::decay.
bool is_linear_matrix(const std::string& name) {
  for (const char* suffix : {"attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight"})
    if (name.size() > std::strlen(suffix) && name.compare(name.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
      return true;
  return name == "head.weight";
}

double reference_norm(const std::vector<float>& g) {
  long double sum = 0;
  for (float x : g) sum += static_cast<long double>(x) * x;
  return static_cast<double>(std::sqrt(sum));
}

TEST(AdamW, MatchesDoublePrecisionReferenceOverSeveralSteps) {
  Model model(small_strided_config());
  model.init(3);
  // Small nonzero values everywhere, so decay is visible on tensors initialized to 0.
  for (float& w : model.weights()) w += 0.01f;
  const int64_t n = model.params().total();
  TrainConfig config;
  config.weight_decay = 0.1;
  config.beta1 = 0.9;
  config.beta2 = 0.999;
  config.eps = 1e-8;
  const double lrs[] = {1e-3, 2e-3, 5e-4, 1e-2, 3e-3, 1e-3};

  // Exact values, and bounds on how far fp32 storage of p, m, v may carry the
  // implementation from them (each store rounds by at most u relative).
  std::vector<double> p(model.weights().begin(), model.weights().end()), m(n, 0.0), v(n, 0.0);
  std::vector<double> ep(n, 0.0), em(n, 0.0), ev(n, 0.0);
  std::vector<bool> decays(n, false);
  for (const ParamInfo& info : model.params().all())
    for (int64_t e = 0; e < info.size; ++e) decays[info.offset + e] = is_linear_matrix(info.name);

  OptimizerState state(n);
  const double u = kUnitRoundoff;
  for (int step = 1; step <= 6; ++step) {
    fill_gradients(model, step);
    const double lr = lrs[step - 1];
    optimizer_step(model, state, config, lr);
    ASSERT_EQ(state.step, step);
    const double b1 = config.beta1, b2 = config.beta2;
    const double bc1 = 1.0 - std::pow(b1, step), c2 = std::sqrt(1.0 - std::pow(b2, step));
    for (int64_t i = 0; i < n; ++i) {
      const double g = model.grads()[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      em[i] = b1 * em[i] + u * std::fabs(m[i]);
      ev[i] = b2 * ev[i] + u * std::fabs(v[i]);
      const double denominator = std::sqrt(v[i]) / c2 + config.eps;
      const double step_size = lr / bc1;
      const double sqrt_v_error = v[i] > 0 ? std::min(ev[i] / (2 * std::sqrt(v[i])), std::sqrt(ev[i])) : std::sqrt(ev[i]);
      const double update_error =
          step_size * (em[i] / denominator + std::fabs(m[i]) * sqrt_v_error / c2 / (denominator * denominator));
      const double keep = decays[i] ? 1.0 - lr * config.weight_decay : 1.0;
      p[i] = p[i] * keep - step_size * m[i] / denominator;
      ep[i] = keep * ep[i] + update_error + u * std::fabs(p[i]);
    }
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_LE(std::fabs(state.exp_avg[i] - m[i]), 2 * em[i]) << "exp_avg " << i << " step " << step;
      ASSERT_LE(std::fabs(state.exp_avg_sq[i] - v[i]), 2 * ev[i]) << "exp_avg_sq " << i << " step " << step;
      ASSERT_LE(std::fabs(model.weights()[i] - p[i]), 2 * ep[i]) << "weight " << i << " step " << step;
    }
  }
}

TEST(AdamW, DecaysOnlyTheLinearLayersMatrices) {
  Model model(small_strided_config());
  for (float& w : model.weights()) w = 1.5f;
  model.zero_grads();  // zero gradients: the Adam part of the update is exactly 0
  TrainConfig config;
  config.weight_decay = 0.5;
  OptimizerState state(model.params().total());
  optimizer_step(model, state, config, 0.1);
  int decayed_tensors = 0;
  for (const ParamInfo& info : model.params().all()) {
    const float expected = is_linear_matrix(info.name) ? static_cast<float>(1.5 * (1 - 0.1 * 0.5)) : 1.5f;
    decayed_tensors += is_linear_matrix(info.name);
    for (int64_t e = 0; e < info.size; ++e)
      ASSERT_EQ(model.weights()[info.offset + e], expected) << info.name << "[" << e << "]";
  }
  EXPECT_EQ(decayed_tensors, 4 * 2 + 1);  // qkv, proj, fc1, fc2 per layer, and the head
}

TEST(AdamW, RefusesStateOfTheWrongSize) {
  Model model(small_strided_config());
  OptimizerState state(10);
  EXPECT_THROW(optimizer_step(model, state, TrainConfig{}, 1e-3), Error);
}

TEST(GradientNorm, IsExactAndIndependentOfThreadCount) {
  Model model(small_strided_config(96));  // several of the norm's fixed chunks
  ASSERT_GT(model.params().total(), 4 * 65536);
  fill_gradients(model, 1);
  // One AdamW step on a fresh model: its weights after the step.
  const auto stepped_weights = [] {
    Model fresh(small_strided_config(96));
    fresh.init(4);
    fill_gradients(fresh, 2);
    OptimizerState state(fresh.params().total());
    optimizer_step(fresh, state, TrainConfig{}, 1e-3);
    return fresh.weights();
  };
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double norm_one = gradient_norm(model, model.grads());
  const std::vector<float> weights_one = stepped_weights();
  omp_set_num_threads(2);
  const double norm_two = gradient_norm(model, model.grads());
  const std::vector<float> weights_two = stepped_weights();
  omp_set_num_threads(3);
  const double norm_three = gradient_norm(model, model.grads());
  omp_set_num_threads(threads);

  EXPECT_EQ(norm_one, norm_two);
  EXPECT_EQ(norm_one, norm_three);
  EXPECT_EQ(std::memcmp(weights_one.data(), weights_two.data(), weights_one.size() * sizeof(float)), 0);
  const double reference = reference_norm(model.grads());
  EXPECT_NEAR(norm_one, reference, 1e-12 * reference);
  EXPECT_THROW(gradient_norm(model, std::vector<float>(3)), Error);
}

TEST(ClipGradients, ScalesToTheMaximumAndReturnsTheNormBefore) {
  Model model(small_strided_config());
  fill_gradients(model, 5);
  const std::vector<float> before = model.grads();
  const double norm = reference_norm(before);
  const double max_norm = norm / 3;
  const double returned = clip_gradients(model, max_norm);
  EXPECT_NEAR(returned, norm, 1e-12 * norm);
  const double factor = max_norm / norm;
  for (size_t i = 0; i < before.size(); ++i) {
    const double expected = before[i] * factor;  // two fp32 roundings: the factor and the product
    ASSERT_LE(std::fabs(model.grads()[i] - expected), 2 * 2 * kUnitRoundoff * std::fabs(expected)) << i;
  }
  EXPECT_NEAR(reference_norm(model.grads()), max_norm, 1e-6 * max_norm);
}

TEST(ClipGradients, LeavesSmallDisabledAndNonFiniteGradientsAlone) {
  Model model(small_strided_config());
  fill_gradients(model, 6);
  const std::vector<float> before = model.grads();
  const double norm = reference_norm(before);
  const auto unchanged = [&] { return std::memcmp(before.data(), model.grads().data(), before.size() * 4) == 0; };

  EXPECT_NEAR(clip_gradients(model, norm * 2), norm, 1e-12 * norm);
  EXPECT_TRUE(unchanged());
  EXPECT_NEAR(clip_gradients(model, 0.0), norm, 1e-12 * norm);
  EXPECT_TRUE(unchanged());

  model.grads()[17] = NAN;
  std::vector<float> with_nan = model.grads();
  EXPECT_TRUE(std::isnan(clip_gradients(model, 1e-3)));
  EXPECT_EQ(std::memcmp(with_nan.data(), model.grads().data(), with_nan.size() * 4), 0);
  model.grads()[17] = INFINITY;
  EXPECT_TRUE(std::isinf(clip_gradients(model, 1e-3)));
  EXPECT_EQ(model.grads()[18], before[18]);
}

}  // namespace
}  // namespace spt
