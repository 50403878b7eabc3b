// The GPU key/value-cache decoder against the CPU one (KvDecoder): the logits of every
// step for each pattern kind and combination mode, half-width q/k and contexts that are
// not a multiple of the stride or of the attention block, and the sampled sequences.
// Skipped without a CUDA device.
#include <gtest/gtest.h>

#ifdef SPT_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/cuda/cuda_sampler.h"
#include "model/model.h"
#include "model/sampler.h"
#include "sampler_test_util.h"
#include "cuda_test_util.h"

namespace spt {
namespace {

struct SamplerCase {
  std::string pattern, mode;
  int ctx = 72;  // not a multiple of the stride 16 nor of the plan's 64-key blocks
  bool half_qk = false;
  int summary_blocks = 1;
  int width = 64;
  int heads = 2;
  int layers = 2;
};

ModelConfig config_of(const SamplerCase& s) {
  ModelConfig c;
  c.layers = s.layers;
  c.width = s.width;
  c.heads = s.heads;
  c.ctx = s.ctx;
  c.pattern = s.pattern;
  c.mode = s.mode;
  c.stride = 16;
  c.summary = 4;
  c.summary_blocks = s.summary_blocks;
  c.half_qk = s.half_qk;
  c.pos_sizes = {(s.ctx + 15) / 16, 16};
  return c;
}

std::string describe(const SamplerCase& s) {
  return s.pattern + "/" + s.mode + " T " + std::to_string(s.ctx) + (s.half_qk ? " half_qk" : "") + " v " +
         std::to_string(s.summary_blocks) + " C " + std::to_string(s.width) + " H " + std::to_string(s.heads);
}

void randomize(Model& model, uint64_t seed) { testing_support::randomize_weights(model, seed); }

const std::vector<SamplerCase>& cases() {
  static const std::vector<SamplerCase> all = {
      {"strided", "merged"},
      {"strided", "merged", 72, true},                 // Dk = 16, Dv = 32
      {"strided", "interleaved"},
      {"fixed", "merged", 72, false, 2},                // per-head summary sub-blocks
      {"fixed", "heads", 72, false, 2},
      {"fixed", "interleaved", 72, true, 2, 128, 2},    // Dk = 32, Dv = 64
      {"local", "merged", 40},
      {"dense", "merged", 700, false, 1, 64, 2, 1},     // 11 key blocks: several per warp
      {"fixed", "merged", 700, true, 1, 128, 4, 1},     // long, half_qk, 4 heads
  };
  return all;
}

TEST(CudaSampler, LogitsOfEveryStepMatchTheCpuDecoder) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (const SamplerCase& s : cases()) {
    const ModelConfig c = config_of(s);
    Model model(c);
    randomize(model, 7);
    const int count = 3;
    std::vector<uint8_t> tokens(static_cast<size_t>(count) * c.ctx);  // (count, T)
    for (size_t e = 0; e < tokens.size(); ++e) tokens[e] = static_cast<uint8_t>(uniform_int(11, e, 256));
    KvDecoder cpu(model, count);
    cuda::CudaDecoder gpu(model, count);
    std::vector<uint8_t> previous(count);  // (count)
    double worst = 0.0, scale = 0.0;
    for (int64_t t = 0; t < c.ctx; ++t) {
      for (int seq = 0; seq < count; ++seq) previous[seq] = t > 0 ? tokens[seq * c.ctx + t - 1] : 0;
      const std::vector<float>& want = cpu.step(previous.data());
      const std::vector<float>& got = gpu.step(previous.data());
      ASSERT_EQ(got.size(), want.size());
      for (size_t e = 0; e < want.size(); ++e) {
        ASSERT_TRUE(std::isfinite(got[e])) << describe(s) << " t " << t << " element " << e;
        worst = std::max(worst, std::abs(static_cast<double>(got[e]) - want[e]));
        scale = std::max(scale, std::abs(static_cast<double>(want[e])));
      }
    }
    EXPECT_EQ(gpu.position(), c.ctx);
    // Both sides are fp32 over the same weights with different summation orders (as the
    // CPU decoder against the full forward in test_sampler.cpp, with twice the margin).
    EXPECT_LE(worst, 2e-5 * std::max(1.0, scale) * std::sqrt(static_cast<double>(c.width)))
        << describe(s) << " worst " << worst << " scale " << scale;
    EXPECT_THROW(gpu.step(previous.data()), Error);
  }
}

TEST(CudaSampler, SampledSequencesAreTheCpuOnes) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (const SamplerCase& s : cases()) {
    if (s.ctx > 100) continue;
    const ModelConfig c = config_of(s);
    Model model(c);
    randomize(model, 3);
    SampleOptions options;
    options.count = 2;
    options.seed = 5;
    options.prefixes = {{'a', 'b', 'c'}, {'x'}};
    for (const float temperature : {0.0f, 1.0f}) {
      options.temperature = temperature;
      options.device = "cpu";
      const auto want = sample(model, options);
      options.device = "cuda";
      const auto got = sample(model, options);
      EXPECT_EQ(got, want) << describe(s) << " temperature " << temperature;
    }
  }
}

// Past the context the window slides (SlidingDecoder over CudaDecoder::reset): greedy tokens
// equal the CPU's, with the default keep and with small and large ones.
TEST(CudaSampler, SlidesToTheCpuTokens) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (const SamplerCase& s : cases()) {
    if (s.ctx > 100) continue;
    const ModelConfig c = config_of(s);
    Model model(c);
    randomize(model, 13);
    SampleOptions options;
    options.count = 2;
    options.temperature = 0.0f;
    options.length = 3 * c.ctx + 11;
    options.prefixes = {{'a', 'b', 'c'}};
    for (const int64_t keep : std::vector<int64_t>{0, 1, c.ctx - 1}) {
      options.keep = keep;
      options.device = "cpu";
      const auto want = sample(model, options);
      options.device = "cuda";
      EXPECT_EQ(sample(model, options), want) << describe(s) << " keep " << keep;
    }
  }
}

TEST(CudaSampler, RefusesBadInputs) {
  SPT_REQUIRE_CUDA_DEVICE();
  const ModelConfig c = config_of({"strided", "merged"});
  Model model(c);
  randomize(model, 1);
  EXPECT_THROW(cuda::CudaDecoder(model, 0), Error);
  EXPECT_THROW(make_decoder("tpu", model, 1), Error);
  EXPECT_NO_THROW(make_decoder("cuda", model, 1));
}

}  // namespace
}  // namespace spt

#else

TEST(CudaSampler, NeedsACudaBuild) { GTEST_SKIP() << "built without CUDA"; }

#endif
