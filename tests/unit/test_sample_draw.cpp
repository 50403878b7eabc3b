// How `spt sample` draws a token (temperature, then top-k, then top-p, then the draw) and
// stops: restrictions keep only the allowed tokens, the tightest ones equal the greedy
// choice, bad values and impossible sizes are refused before anything is allocated.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/rng.h"
#include "model/model.h"
#include "model/sampler.h"
#include "test_support.h"

namespace spt {
namespace {

ModelConfig small_model() {
  ModelConfig c = testing_support::small_strided_config();
  c.layers = 1;
  c.ctx = 24;
  c.pos_sizes = {6, 4};
  return c;
}

std::vector<float> random_logits(uint64_t seed) {
  std::vector<float> logits(kVocab);
  for (int v = 0; v < kVocab; ++v) logits[v] = 2.0f * normal01(seed, v);
  return logits;
}

int greedy(const std::vector<float>& logits) {
  return static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

TEST(SampleDraw, TopKOneAndTinyTopPAreGreedy) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> logits = random_logits(seed);
    for (uint64_t index = 0; index < 50; ++index) {
      EXPECT_EQ(draw_token(logits.data(), {1.5f, 1, 1.0f}, seed, index), greedy(logits));
      EXPECT_EQ(draw_token(logits.data(), {1.5f, kVocab, 1e-6f}, seed, index), greedy(logits));
    }
  }
}

TEST(SampleDraw, RestrictionsKeepOnlyTheAllowedTokensInProportion) {
  std::vector<float> logits(kVocab, -4.0f);
  logits[10] = 3.0f, logits[20] = 2.5f, logits[30] = 2.0f, logits[40] = 1.0f;  // ranked 10, 20, 30, 40
  std::map<int, int> top_k, top_p;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    ++top_k[draw_token(logits.data(), {1.0f, 2, 1.0f}, 7, i)];
    ++top_p[draw_token(logits.data(), {1.0f, kVocab, 0.8f}, 7, i)];
  }
  ASSERT_EQ(top_k.size(), 2u);
  const double expected = 1.0 / (1.0 + std::exp(-0.5));  // p(10) / (p(10) + p(20))
  EXPECT_NEAR(top_k[10] / double(draws), expected, 0.02);
  EXPECT_EQ(top_k[10] + top_k[20], draws);
  // p(10), p(20), p(30) of the whole softmax: 0.43, 0.26, 0.16; the nucleus of 0.8 takes all three.
  ASSERT_EQ(top_p.size(), 3u);
  EXPECT_GT(top_p[30], 0);
  EXPECT_EQ(top_p.count(40), 0u);
}

TEST(SampleDraw, NoRestrictionDrawsAsBefore) {
  // The unrestricted path is the plain softmax draw: the same token for the same stream index.
  const std::vector<float> logits = random_logits(3);
  for (uint64_t index = 0; index < 200; ++index) {
    double probs[kVocab], total = 0;
    double top = *std::max_element(logits.begin(), logits.end()) / 0.7;
    for (int v = 0; v < kVocab; ++v) total += probs[v] = std::exp(logits[v] / 0.7 - top);
    double u = uniform01(5, index) * total;
    int expected = kVocab - 1;
    for (int v = 0; v < kVocab; ++v) {
      if (u < probs[v]) {
        expected = v;
        break;
      }
      u -= probs[v];
    }
    EXPECT_EQ(draw_token(logits.data(), {0.7f, kVocab, 1.0f}, 5, index), expected);
  }
}

TEST(SampleDraw, ValuesOutOfRangeAreRefused) {
  EXPECT_THROW(validate(DrawOptions{1.0f, 0, 1.0f}), Error);
  EXPECT_THROW(validate(DrawOptions{1.0f, 257, 1.0f}), Error);
  EXPECT_THROW(validate(DrawOptions{1.0f, 5, 0.0f}), Error);
  EXPECT_THROW(validate(DrawOptions{1.0f, 5, 1.01f}), Error);
  EXPECT_THROW(validate(DrawOptions{-1.0f, 5, 0.5f}), Error);
  EXPECT_NO_THROW(validate(DrawOptions{0.0f, 1, 1e-6f}));
  Model model(small_model());
  SampleOptions options;
  options.top_k = 0;
  EXPECT_THROW(sample(model, options), Error);
}

TEST(SampleDraw, NegativeLengthAndHugeCountsAreRefused) {
  Model model(small_model());
  SampleOptions options;
  options.length = -5;
  EXPECT_THROW(sample(model, options), Error);
  options.length = 0;
  options.count = 0;
  EXPECT_THROW(sample(model, options), Error);
  options.count = 2000000000;  // ~ 2e9 key/value caches: refused before any allocation
  testing_support::expect_error([&] { sample(model, options); }, {"MiB"});
  EXPECT_GT(sample_memory_bytes(model.config(), 2, 24, "cpu"), sample_memory_bytes(model.config(), 1, 24, "cpu"));
}

TEST(SampleDraw, ACallbackSeesEveryPositionAndCanStop) {
  Model model(small_model());
  model.init(4);
  SampleOptions options;
  options.count = 2;
  options.seed = 3;
  const auto whole = sample(model, options);
  std::vector<uint8_t> seen;
  options.on_position = [&](int64_t t, const std::vector<uint8_t>& tokens) {
    EXPECT_EQ(tokens.size(), 2u);
    seen.push_back(tokens[0]);
    return t < 9;
  };
  const auto part = sample(model, options);
  ASSERT_EQ(part[0].size(), 10u);  // positions 0..9: the callback said stop after position 9
  EXPECT_EQ(seen, part[0]);
  EXPECT_TRUE(std::equal(part[1].begin(), part[1].end(), whole[1].begin()));
}

}  // namespace
}  // namespace spt
