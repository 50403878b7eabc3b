// The whole model: loss against the separate double-precision implementation
// (naive_model.h) for every pattern and combination mode, every parameter's gradient
// against central finite differences of that implementation, recomputation giving
// the same bits, memory under recomputation, evaluation and logits, and a tiny model
// learning one batch by heart.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/model.h"
#include "naive_model.h"
#include "ops/linear.h"
#include "test_support.h"

namespace spt {
namespace {

constexpr double kU = testing_support::kUnitRoundoff;

struct PatternCase {
  std::string pattern;
  int summary;
  int summary_blocks;
};

const PatternCase kPatterns[] = {
    {"dense", 1, 1}, {"local", 1, 1}, {"strided", 1, 1}, {"fixed", 2, 1}, {"fixed", 1, 2},
};
const char* const kModes[] = {"merged", "interleaved", "heads"};

// L = 2, C = 16, H = 2, l = 4; the variant index walks T, ff_ratio and half_qk so that
// every value meets every pattern.
ModelConfig tiny_config(const PatternCase& p, const std::string& mode, int variant) {
  ModelConfig c;
  c.layers = 2;
  c.width = 16;
  c.heads = 2;
  c.ctx = variant % 2 == 0 ? 16 : 12;
  c.ff_ratio = (variant / 2) % 2 == 0 ? 4.0 : 2.0;
  c.half_qk = variant % 3 == 1;
  c.pattern = p.pattern;
  c.stride = 4;
  c.summary = p.summary;
  c.summary_blocks = p.summary_blocks;
  c.mode = mode;
  c.dropout = 0.0;
  c.pos_sizes = {(c.ctx + 3) / 4, 4};
  return c;
}

// Every weight N(0, 0.1^2) around its initial value (1 for LayerNorm gains), so that no
// gradient is zero by construction (head.weight and the biases start at zero).
void randomize(Model& model, uint64_t seed) {
  model.init(seed);
  for (size_t e = 0; e < model.weights().size(); ++e)
    model.weights()[e] += 0.1f * normal01(rng_key(seed, 0x72616E64ULL), e);
}

naive::Weights to_naive(Model& model) {
  naive::Weights w;
  for (const ParamInfo& p : model.params().all()) {
    const float* data = model.weights().data() + p.offset;
    w[p.name] = std::vector<double>(data, data + p.size);
  }
  return w;
}

std::vector<uint8_t> random_tokens(int B, int T, uint64_t seed) {
  std::vector<uint8_t> x(static_cast<size_t>(B) * T);
  for (size_t e = 0; e < x.size(); ++e) x[e] = static_cast<uint8_t>(uniform_int(seed, e, 256));
  return x;
}

double naive_batch_loss(const ModelConfig& c, const naive::Weights& w, const std::vector<uint8_t>& x, int B) {
  double sum = 0;
  for (int b = 0; b < B; ++b)
    sum += naive::sequence_loss(c, w, std::vector<uint8_t>(x.begin() + b * c.ctx, x.begin() + (b + 1) * c.ctx));
  return sum / B;
}

using Combo = std::tuple<int, int>;  // pattern index, mode index

class ModelVsNaive : public ::testing::TestWithParam<Combo> {};

TEST_P(ModelVsNaive, LossAndEveryParameterGradient) {
  const auto [pattern_index, mode_index] = GetParam();
  const ModelConfig c = tiny_config(kPatterns[pattern_index], kModes[mode_index], pattern_index * 3 + mode_index);
  const int B = 2;
  Model model(c);
  randomize(model, 100 + pattern_index * 3 + mode_index);
  const auto x = random_tokens(B, c.ctx, 7 + mode_index);
  model.zero_grads();
  const double loss = model.forward_backward(x.data(), B, DropoutContext{}, 1.0f);
  naive::Weights w = to_naive(model);
  const double expected = naive_batch_loss(c, w, x, B);
  ASSERT_NEAR(loss, expected, 1e-5 * expected) << "T=" << c.ctx << " ff=" << c.ff_ratio << " half_qk=" << c.half_qk;

  // A handful of elements of every tensor against central differences of the naive
  // loss (truncation error ~eps^2 |f'''| / 6 ~ 1e-9). The fp32 gradient of an element
  // is a chain of sums of at most K = B*T*max(C, F) terms; rounding errors of such sums
  // grow like sqrt(K) * u of the terms' size (the probabilistic bound; K * u is the
  // worst case), and the terms are of the size of the tensor's largest gradient. A
  // factor 8 covers the chain of about ten such steps between the loss and a weight.
  const double eps = 1e-4;
  const int64_t K = int64_t{B} * c.ctx * std::max(c.width, c.ff_width());
  for (const ParamInfo& p : model.params().all()) {
    const float* grad = model.grads().data() + p.offset;
    double largest = 0;
    for (int64_t e = 0; e < p.size; ++e) largest = std::max(largest, static_cast<double>(std::abs(grad[e])));
    ASSERT_GT(largest, 0.0) << p.name << " has an all-zero gradient";
    const double tolerance = 8.0 * std::sqrt(static_cast<double>(K)) * kU * largest + 1e-8;
    std::vector<double>& tensor = w[p.name];
    for (int pick = 0; pick < 4; ++pick) {
      int64_t e = static_cast<int64_t>(uniform_int(rng_key(pattern_index, mode_index, p.offset), pick, p.size));
      if (pick == 0)  // always include the element with the largest gradient
        for (int64_t k = 0; k < p.size; ++k)
          if (std::abs(grad[k]) == largest) e = k;
      const double saved = tensor[e];
      tensor[e] = saved + eps;
      const double up = naive_batch_loss(c, w, x, B);
      tensor[e] = saved - eps;
      const double down = naive_batch_loss(c, w, x, B);
      tensor[e] = saved;
      const double fd = (up - down) / (2 * eps);
      EXPECT_NEAR(grad[e], fd, tolerance) << p.name << "[" << e << "] largest " << largest;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllPatternsAndModes, ModelVsNaive,
                         ::testing::Combine(::testing::Range(0, 5), ::testing::Range(0, 3)),
                         [](const ::testing::TestParamInfo<Combo>& info) {
                           const PatternCase& p = kPatterns[std::get<0>(info.param)];
                           return p.pattern + "_c" + std::to_string(p.summary) + "_v" +
                                  std::to_string(p.summary_blocks) + "_" + kModes[std::get<1>(info.param)];
                         });

ModelConfig dropout_config(int layers) {
  ModelConfig c = tiny_config(kPatterns[3], "interleaved", 0);
  c.layers = layers;
  c.dropout = 0.25;
  return c;
}

TEST(Model, RecomputationGivesBitwiseEqualGradientsWithDropout) {
  const ModelConfig c = dropout_config(3);
  const int B = 2;
  const auto x = random_tokens(B, c.ctx, 3);
  const DropoutContext dropout{42, 5, true};
  std::vector<float> grads[2];
  double losses[2];
  for (int recompute = 0; recompute < 2; ++recompute) {
    Model model(c);
    randomize(model, 9);
    model.recompute = recompute == 1;
    model.zero_grads();
    // two micro-batches accumulate, as the trainer does
    losses[recompute] = model.forward_backward(x.data(), B, dropout, 0.5f);
    model.forward_backward(x.data(), B, DropoutContext{42, 6, true}, 0.5f);
    grads[recompute] = model.grads();
  }
  EXPECT_EQ(losses[0], losses[1]);
  ASSERT_EQ(grads[0].size(), grads[1].size());
  EXPECT_EQ(std::memcmp(grads[0].data(), grads[1].data(), grads[0].size() * sizeof(float)), 0);
}

TEST(Model, DropoutIsSeededAndItsGradientMatchesTheLoss) {
  const ModelConfig c = dropout_config(2);
  const int B = 2;
  const auto x = random_tokens(B, c.ctx, 4);
  Model model(c);
  randomize(model, 10);
  const DropoutContext dropout{7, 1, true};
  model.zero_grads();
  const double with_dropout = model.forward_backward(x.data(), B, dropout, 1.0f);
  const std::vector<float> grads = model.grads();
  EXPECT_EQ(model.forward_backward(x.data(), B, dropout, 1.0f), with_dropout);
  EXPECT_NE(model.forward_backward(x.data(), B, DropoutContext{7, 2, true}, 1.0f), with_dropout);
  EXPECT_NE(model.forward_backward(x.data(), B, DropoutContext{}, 1.0f), with_dropout);
  // The largest gradients of the branch outputs against differences of the fp32 loss
  // under the same mask: with eps = 1e-2 the loss's rounding (~5 * 2u) costs ~1e-5 and
  // the truncation ~eps^2 |f'''|; 2% of the gradient covers both.
  for (const char* name : {"blocks.0.attn.proj.bias", "blocks.1.mlp.fc2.bias", "blocks.0.mlp.fc1.weight"}) {
    const ParamInfo& p = model.params().find(name);
    int64_t best = 0;
    for (int64_t e = 0; e < p.size; ++e)
      if (std::abs(grads[p.offset + e]) > std::abs(grads[p.offset + best])) best = e;
    float& weight = model.weights()[p.offset + best];
    const float saved = weight;
    const float eps = 1e-2f;
    weight = saved + eps;
    const double up = model.forward_backward(x.data(), B, dropout, 1.0f);
    weight = saved - eps;
    const double down = model.forward_backward(x.data(), B, dropout, 1.0f);
    weight = saved;
    const double fd = (up - down) / (2.0 * eps);
    EXPECT_NEAR(grads[p.offset + best], fd, 0.02 * std::abs(fd) + 2e-5) << name;
  }
}

TEST(Model, EvaluateAndLogitsAgreeWithTraining) {
  const ModelConfig c = tiny_config(kPatterns[2], "merged", 0);
  Model model(c);
  randomize(model, 11);
  const int B = 3;
  const auto x = random_tokens(B, c.ctx, 5);
  model.zero_grads();
  const double loss = model.forward_backward(x.data(), B, DropoutContext{}, 1.0f);
  std::vector<float> losses(B * c.ctx), logits(B * c.ctx * kVocab);
  model.evaluate(x.data(), B, losses.data());
  double sum = 0;
  for (float l : losses) sum += l;
  EXPECT_NEAR(sum / losses.size(), loss, 4 * kU * loss);
  model.logits(x.data(), B, logits.data());
  for (int64_t n = 0; n < B * c.ctx; ++n) {
    const float* row = logits.data() + n * kVocab;
    double mx = row[0], z = 0;
    for (int v = 0; v < kVocab; ++v) mx = std::max<double>(mx, row[v]);
    for (int v = 0; v < kVocab; ++v) z += std::exp(row[v] - mx);
    ASSERT_NEAR(losses[n], mx + std::log(z) - row[x[n]], 16 * kU * (std::abs(mx) + 1)) << n;
  }
  // Any batch size: each sequence alone gives the same per-token losses.
  for (int b = 0; b < B; ++b) {
    std::vector<float> alone(c.ctx);
    model.evaluate(x.data() + b * c.ctx, 1, alone.data());
    for (int t = 0; t < c.ctx; ++t) ASSERT_NEAR(alone[t], losses[b * c.ctx + t], 64 * kU * losses[b * c.ctx + t]);
  }
  const double expected = naive::sequence_loss(c, to_naive(model), std::vector<uint8_t>(x.begin(), x.begin() + c.ctx));
  double first = 0;
  for (int t = 0; t < c.ctx; ++t) first += losses[t];
  EXPECT_NEAR(first / c.ctx, expected, 1e-5 * expected);
}

TEST(Model, RecomputationHoldsLessAndDoesNotGrowWithDepth) {
  const int B = 2;
  auto bytes = [&](int layers, bool recompute) {
    ModelConfig c = tiny_config(kPatterns[2], "merged", 0);
    c.layers = layers;
    Model model(c);
    model.init(1);
    model.recompute = recompute;
    const auto x = random_tokens(B, c.ctx, 6);
    model.forward_backward(x.data(), B, DropoutContext{}, 1.0f);
    const int64_t residual = int64_t{layers + 1} * B * c.ctx * c.width * static_cast<int64_t>(sizeof(float));
    return std::make_pair(model.activation_bytes(), model.activation_bytes() - residual);
  };
  const auto [with2, rest2] = bytes(2, true);
  const auto [without2, unused2] = bytes(2, false);
  const auto [with8, rest8] = bytes(8, true);
  const auto [without8, unused8] = bytes(8, false);
  EXPECT_LT(with2, without2);
  EXPECT_LT(with8, without8);
  EXPECT_EQ(rest2, rest8) << "the non-residual part must not grow with the number of layers";
  EXPECT_GT(rest2, 0);
  EXPECT_GT(without8 - without2, 3 * (with8 - with2)) << "without recomputation every layer keeps its activations";
}

TEST(Model, BatchSizeChangesAndNonFiniteWeightsDoNotCrash) {
  const ModelConfig c = tiny_config(kPatterns[4], "heads", 1);
  Model model(c);
  model.init(3);
  const auto x = random_tokens(4, c.ctx, 8);
  model.zero_grads();
  EXPECT_TRUE(std::isfinite(model.forward_backward(x.data(), 4, DropoutContext{}, 1.0f)));
  const int64_t bytes4 = model.activation_bytes();
  EXPECT_TRUE(std::isfinite(model.forward_backward(x.data(), 1, DropoutContext{}, 1.0f)));
  EXPECT_LT(model.activation_bytes(), bytes4);
  model.param("blocks.0.mlp.fc1.weight")[3] = NAN;
  EXPECT_TRUE(std::isnan(model.forward_backward(x.data(), 2, DropoutContext{}, 1.0f)));
  EXPECT_THROW(model.forward_backward(x.data(), 0, DropoutContext{}, 1.0f), Error);
}

// Adam on one fixed sequence: position t sees tokens [0, t) and its position, so a
// small model can learn every next byte of one window by heart.
TEST(Model, TinyModelLearnsOneBatchByHeart) {
  ModelConfig c = tiny_config(kPatterns[2], "merged", 0);
  c.width = 32;
  c.ctx = 32;
  c.pos_sizes = {8, 4};
  Model model(c);
  model.init(5);
  const int B = 1;
  const auto x = random_tokens(B, c.ctx, 9);
  std::vector<float>& w = model.weights();
  std::vector<float> m(w.size(), 0.0f), v(w.size(), 0.0f);
  const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.99f;
  double loss = 0;
  int step = 0;
  for (; step < 400; ++step) {
    model.zero_grads();
    loss = model.forward_backward(x.data(), B, DropoutContext{}, 1.0f);
    if (loss < 0.02) break;
    const float c1 = 1.0f - std::pow(beta1, step + 1.0f), c2 = 1.0f - std::pow(beta2, step + 1.0f);
    for (size_t e = 0; e < w.size(); ++e) {
      const float g = model.grads()[e];
      m[e] = beta1 * m[e] + (1 - beta1) * g;
      v[e] = beta2 * v[e] + (1 - beta2) * g * g;
      w[e] -= lr * (m[e] / c1) / (std::sqrt(v[e] / c2) + 1e-8f);
    }
  }
  EXPECT_LT(loss, 0.05) << "after " << step << " steps";
  std::vector<float> losses(c.ctx);
  model.evaluate(x.data(), B, losses.data());
  for (float l : losses) EXPECT_LT(l, 0.5f);
}

}  // namespace
}  // namespace spt
