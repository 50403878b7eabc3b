// The key/value-cache decoder against the full forward pass, and the sampler's use of it.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#ifdef SPT_HAVE_CUDA
#include "core/cuda_check.h"
#endif
#include "core/rng.h"
#include "model/model.h"
#include "model/sampler.h"
#include "sampler_test_util.h"

namespace spt {
namespace {

ModelConfig tiny(const std::string& pattern, const std::string& mode) {
  return testing_support::tiny_sampler_model(pattern, mode);
}

void randomize(Model& model, uint64_t seed) { testing_support::randomize_weights(model, seed); }

std::vector<uint8_t> random_tokens(int count, int64_t T, uint64_t seed) {
  std::vector<uint8_t> tokens(static_cast<size_t>(count) * T);
  for (size_t e = 0; e < tokens.size(); ++e) tokens[e] = static_cast<uint8_t>(uniform_int(seed, e, 256));
  return tokens;
}

TEST(Sampler, CachedDecoderMatchesFullForward) {
  for (const auto& [pattern, mode] : std::vector<std::pair<std::string, std::string>>{
           {"dense", "merged"}, {"local", "merged"}, {"strided", "merged"}, {"strided", "interleaved"},
           {"fixed", "merged"}, {"fixed", "heads"}}) {
    const ModelConfig c = tiny(pattern, mode);
    Model model(c);
    randomize(model, 7);
    const int count = 3;
    const std::vector<uint8_t> tokens = random_tokens(count, c.ctx, 11);  // (count, T)
    std::vector<float> full(static_cast<size_t>(count) * c.ctx * kVocab);  // (count, T, V)
    model.logits(tokens.data(), count, full.data());
    KvDecoder decoder(model, count);
    std::vector<uint8_t> previous(count);
    double worst = 0.0, scale = 0.0;
    for (int64_t t = 0; t < c.ctx; ++t) {
      for (int s = 0; s < count; ++s) previous[s] = t > 0 ? tokens[s * c.ctx + t - 1] : 0;
      const std::vector<float>& logits = decoder.step(previous.data());
      for (int s = 0; s < count; ++s)
        for (int v = 0; v < kVocab; ++v) {
          const double ref = full[(static_cast<size_t>(s) * c.ctx + t) * kVocab + v];
          worst = std::max(worst, std::abs(logits[s * kVocab + v] - ref));
          scale = std::max(scale, std::abs(ref));
        }
    }
    // Both paths are fp32 over the same weights with different summation orders: the
    // difference is a few ulps of the activations, amplified through 2 layers.
    EXPECT_LE(worst, 1e-5 * std::max(1.0, scale) * std::sqrt(static_cast<double>(c.width)))
        << pattern << "/" << mode << " worst " << worst << " scale " << scale;
    EXPECT_THROW(decoder.step(previous.data()), Error);
  }
}

// A cache of fewer positions than the context (what sampling --length N < T allocates)
// gives the same logits at every position it holds, and refuses the next one.
TEST(Sampler, ASmallerCacheGivesTheSameLogits) {
  for (const std::string pattern : {"strided", "fixed"}) {
    const ModelConfig c = tiny(pattern, "merged");
    Model model(c);
    randomize(model, 9);
    const int count = 2;
    const int64_t capacity = 13;
    const std::vector<uint8_t> tokens = random_tokens(count, capacity, 5);  // (count, capacity)
    KvDecoder whole(model, count), part(model, count, capacity);
    std::vector<uint8_t> previous(count);
    for (int64_t t = 0; t < capacity; ++t) {
      for (int s = 0; s < count; ++s) previous[s] = t > 0 ? tokens[s * capacity + t - 1] : 0;
      const std::vector<float> want = whole.step(previous.data());
      EXPECT_EQ(part.step(previous.data()), want) << pattern << " position " << t;
    }
    EXPECT_THROW(part.step(previous.data()), Error);
  }
  EXPECT_THROW(KvDecoder(*std::make_unique<Model>(tiny("strided", "merged")), 1, 41), Error);
}

TEST(Sampler, GreedyFollowsTheModelAndKeepsThePrefix) {
  const ModelConfig c = tiny("fixed", "merged");
  Model model(c);
  randomize(model, 3);
  SampleOptions options;
  options.count = 2;
  options.temperature = 0.0f;
  options.prefixes = {{'a', 'b', 'c'}, {'x'}};
  const auto samples = sample(model, options);
  ASSERT_EQ(samples.size(), 2u);
  std::vector<uint8_t> tokens;
  for (const auto& s : samples) {
    ASSERT_EQ(static_cast<int64_t>(s.size()), c.ctx);
    tokens.insert(tokens.end(), s.begin(), s.end());
  }
  EXPECT_EQ(samples[0][0], 'a');
  EXPECT_EQ(samples[0][2], 'c');
  EXPECT_EQ(samples[1][0], 'x');
  std::vector<float> logits(tokens.size() * kVocab);
  model.logits(tokens.data(), 2, logits.data());
  for (int s = 0; s < 2; ++s)
    for (int64_t t = static_cast<int64_t>(options.prefixes[s].size()); t < c.ctx; ++t) {
      const float* row = logits.data() + (static_cast<size_t>(s) * c.ctx + t) * kVocab;
      EXPECT_EQ(samples[s][t], std::max_element(row, row + kVocab) - row) << s << "," << t;
    }
}

TEST(Sampler, SeededAndValidated) {
  const ModelConfig c = tiny("strided", "merged");
  Model model(c);
  randomize(model, 5);
  SampleOptions options;
  options.count = 2;
  options.length = 16;
  options.temperature = 1.0f;
  options.seed = 9;
  EXPECT_EQ(sample(model, options), sample(model, options));
  options.seed = 10;
  const auto other = sample(model, options);
  options.seed = 9;
  EXPECT_NE(sample(model, options), other);
  options.length = 4;
  options.prefixes = {{1, 2, 3, 4, 5}};
  EXPECT_THROW(sample(model, options), Error);
}

// Asking for the GPU decoder where there is none is an error, never a CPU run. With a GPU
// the CUDA sampler tests (test_cuda_sampler.cpp) cover it.
TEST(Sampler, CudaWithoutAGpuIsAnError) {
#ifdef SPT_HAVE_CUDA
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
#endif
  const ModelConfig c = tiny("strided", "merged");
  Model model(c);
  SampleOptions options;
  options.length = 4;
  options.device = "cuda";
  EXPECT_THROW(sample(model, options), Error);
  EXPECT_THROW(make_decoder("cuda", model, 1), Error);
  EXPECT_THROW(make_decoder("gpu", model, 1), Error);
  EXPECT_NE(make_decoder("cpu", model, 1), nullptr);
}

}  // namespace
}  // namespace spt
