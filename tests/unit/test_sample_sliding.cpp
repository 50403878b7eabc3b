// Sampling past the context: the sliding window (SlidingDecoder) against the model's full
// forward pass over the window each slide defines, the first T tokens of a long sample
// against a sample of length T, prompts longer than the context, and the refusals (image
// models, --keep out of range).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/rng.h"
#include "model/model.h"
#include "model/sampler.h"
#include "sampler_test_util.h"
#include "test_support.h"

namespace spt {
namespace {

using testing_support::error_of;

ModelConfig tiny(const std::string& pattern) { return testing_support::tiny_sampler_model(pattern); }

void randomize(Model& model, uint64_t seed) { testing_support::randomize_weights(model, seed); }

// The model's plain forward over the window of `count` sequences that starts at absolute
// position `start` (T tokens, zeros past the end of a sequence: causal, so they change
// nothing before them): logits (count, T, V).
std::vector<float> window_logits(Model& model, const Sequences& sequences, int64_t start) {
  const int64_t T = model.config().ctx;
  const int count = static_cast<int>(sequences.size());
  std::vector<uint8_t> window(static_cast<size_t>(count) * T, 0);  // (count, T)
  for (int s = 0; s < count; ++s)
    for (int64_t p = 0; p < T && start + p < static_cast<int64_t>(sequences[s].size()); ++p)
      window[s * T + p] = sequences[s][start + p];
  std::vector<float> logits(window.size() * kVocab);
  model.logits(window.data(), count, logits.data());
  return logits;
}

TEST(SampleSliding, LogitsAfterASlideEqualTheFullForwardOverItsWindow) {
  for (const std::string pattern : {"strided", "fixed", "local", "dense"}) {
    const ModelConfig c = tiny(pattern);
    Model model(c);
    randomize(model, 17);
    const int count = 2;
    const int64_t length = 3 * c.ctx + 5;
    Sequences tokens(count, std::vector<uint8_t>(length));
    for (int s = 0; s < count; ++s)
      for (int64_t t = 0; t < length; ++t) tokens[s][t] = static_cast<uint8_t>(uniform_int(23, s * length + t, 256));
    for (const int64_t keep : std::vector<int64_t>{1, c.ctx / 2, c.ctx - 1}) {
      KvDecoder decoder(model, count);
      SlidingDecoder window(decoder, count, c.ctx, keep);
      std::map<int64_t, std::vector<float>> full;  // window start -> (count, T, V)
      double worst = 0.0, scale = 0.0;
      for (int64_t t = 0; t < length; ++t) {
        const std::vector<float>& got = window.step(tokens);
        const int64_t start = window.window_start();
        ASSERT_EQ(start, t < c.ctx ? 0 : (t - keep) / (c.ctx - keep) * (c.ctx - keep)) << "t " << t;
        if (!full.count(start)) full[start] = window_logits(model, tokens, start);
        const std::vector<float>& want = full[start];
        for (int s = 0; s < count; ++s)
          for (int v = 0; v < kVocab; ++v) {
            const double ref = want[(static_cast<size_t>(s) * c.ctx + (t - start)) * kVocab + v];
            worst = std::max(worst, std::abs(got[s * kVocab + v] - ref));
            scale = std::max(scale, std::abs(ref));
          }
      }
      EXPECT_GE(window.slides(), 2) << pattern << " keep " << keep;
      // fp32 on both sides with different summation orders, as the decoder against the full
      // forward without slides (test_sampler.cpp).
      EXPECT_LE(worst, 1e-5 * std::max(1.0, scale) * std::sqrt(static_cast<double>(c.width)))
          << pattern << " keep " << keep << " worst " << worst << " scale " << scale;
    }
  }
}

// Options for `count` sequences of `length` tokens (0: T) that start with `prefix`.
SampleOptions options_for(int count, int64_t length, std::vector<uint8_t> prefix) {
  SampleOptions options;
  options.count = count;
  options.length = length;
  options.prefixes = {std::move(prefix)};
  return options;
}

TEST(SampleSliding, TheFirstTTokensOfALongSampleAreASampleOfLengthT) {
  const ModelConfig c = tiny("strided");
  Model model(c);
  randomize(model, 4);
  SampleOptions options = options_for(3, 0, {'a', 'b'});
  options.seed = 12;
  const Sequences short_run = sample(model, options);
  for (const int64_t keep : {int64_t{0}, int64_t{5}}) {
    options.length = 4 * c.ctx;
    options.keep = keep;
    const Sequences long_run = sample(model, options);
    EXPECT_EQ(sample(model, options), long_run) << "a sliding run is reproducible";
    for (int s = 0; s < options.count; ++s) {
      ASSERT_EQ(static_cast<int64_t>(long_run[s].size()), 4 * c.ctx);
      EXPECT_TRUE(std::equal(short_run[s].begin(), short_run[s].end(), long_run[s].begin())) << s << " keep " << keep;
    }
  }
}

// A greedy sample past the context draws every token as the argmax of the full forward pass
// over its window: the windows start at multiples of T - K.
TEST(SampleSliding, AGreedyLongSampleFollowsTheModelOverEachWindow) {
  const ModelConfig c = tiny("fixed");
  Model model(c);
  randomize(model, 8);
  std::vector<uint8_t> prompt(c.ctx + 7);  // longer than the context: forced through the first slide
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<uint8_t>(uniform_int(2, i, 256));
  SampleOptions options = options_for(2, 3 * c.ctx, prompt);
  options.temperature = 0.0f;
  options.keep = 10;
  const Sequences samples = sample(model, options);
  const int64_t K = options.keep, step = c.ctx - K;
  for (int s = 0; s < options.count; ++s)
    EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), samples[s].begin())) << s;
  for (int64_t t = static_cast<int64_t>(prompt.size()); t < options.length; ++t) {
    const int64_t start = t < c.ctx ? 0 : (t - K) / step * step;
    const std::vector<float> logits = window_logits(model, samples, start);
    for (int s = 0; s < options.count; ++s) {
      const float* row = logits.data() + (static_cast<size_t>(s) * c.ctx + (t - start)) * kVocab;
      EXPECT_EQ(samples[s][t], std::max_element(row, row + kVocab) - row) << s << "," << t;
    }
  }
}

TEST(SampleSliding, StopsDuringRePrimingWithTheTokensDrawn) {
  const ModelConfig c = tiny("strided");
  Model model(c);
  randomize(model, 6);
  SampleOptions options;
  options.length = 2 * c.ctx;
  int calls = 0;
  options.on_reprime_step = [&] { return ++calls < 3; };
  const Sequences samples = sample(model, options);
  EXPECT_EQ(calls, 3);
  ASSERT_EQ(static_cast<int64_t>(samples[0].size()), c.ctx);  // the first window, nothing of the second
}

TEST(SampleSliding, ImageModelsAndKeepsOutOfRangeAreRefused) {
  ModelConfig image = tiny("strided");
  image.ctx = 24;
  image.pos_sizes = {2, 4, 3};
  Model images(image);
  SampleOptions options;
  options.length = image.ctx + 1;
  const std::string refused = error_of([&] { sample(images, options); });
  EXPECT_NE(refused.find("one image of 2 x 4 x 3 = 24 tokens"), std::string::npos) << refused;
  EXPECT_NE(refused.find("--length <= 24"), std::string::npos) << refused;
  options.length = image.ctx;
  EXPECT_EQ(sample(images, options)[0].size(), 24u);

  Model text(tiny("strided"));
  options.length = 30;
  for (const int64_t keep : {int64_t{-1}, int64_t{40}}) {
    options.keep = keep;
    EXPECT_NE(error_of([&] { sample(text, options); }).find("--keep"), std::string::npos) << keep;
  }
  KvDecoder decoder(text, 1);
  EXPECT_THROW(SlidingDecoder(decoder, 1, 24, 24), Error);
}

}  // namespace
}  // namespace spt
