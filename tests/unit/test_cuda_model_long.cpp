// The model at audio lengths on the GPU against the CPU oracle: one training step at
// T = 65,536 (the paper's shortest audio context) with a small width, compared per
// chunk of positions (every chunk's loss and the gradients of every tensor), in fp32
// (the reference kernels) and bf16 (the pattern-specific kernels training uses).
// Skipped without a CUDA device.
#include <gtest/gtest.h>

#ifdef SPT_HAVE_CUDA
#include <cmath>
#include <vector>

#include "core/cuda_check.h"
#include "core/rng.h"
#include "model/cuda/cuda_model.h"
#include "model/model.h"
#include "cuda_test_util.h"

namespace spt {
namespace {

constexpr int kLongT = 65536;
constexpr int64_t kChunk = 4096;  // positions per compared chunk

ModelConfig long_audio_config() {
  ModelConfig c;
  c.layers = 2;
  c.width = 64;
  c.heads = 1;  // D = 64: the tensor-core kernels' head dim in bf16
  c.ctx = kLongT;
  c.pattern = "strided";
  c.stride = 256;
  c.pos_sizes = {kLongT / 256, 256};
  c.sample_rate = 12000;
  return c;
}

double relative_error(const std::vector<float>& got, const std::vector<float>& want, int64_t begin, int64_t n) {
  double diff = 0, norm = 0;
  for (int64_t e = begin; e < begin + n; ++e) {
    diff += (static_cast<double>(got[e]) - want[e]) * (static_cast<double>(got[e]) - want[e]);
    norm += static_cast<double>(want[e]) * want[e];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

// Mean per-token loss of each chunk of kChunk positions; losses: (T).
std::vector<double> chunk_means(const std::vector<float>& losses) {
  std::vector<double> means;
  for (int64_t begin = 0; begin < static_cast<int64_t>(losses.size()); begin += kChunk) {
    double sum = 0;
    for (int64_t t = begin; t < begin + kChunk; ++t) sum += losses[t];
    means.push_back(sum / kChunk);
  }
  return means;
}

struct Tolerance {
  double chunk_loss;  // absolute, nats per token
  double gradient;    // relative L2 per tensor
};

void compare_long_step(cuda::DType precision, Tolerance tol) {
  const ModelConfig c = long_audio_config();
  Model cpu(c);
  cpu.init(11);
  for (size_t e = 0; e < cpu.weights().size(); ++e) cpu.weights()[e] += 0.05f * normal01(12, e);
  std::vector<uint8_t> tokens(kLongT);  // (1, T): a slow sine through mu-law-like codes plus noise
  for (int t = 0; t < kLongT; ++t)
    tokens[t] = static_cast<uint8_t>(128 + 100 * std::sin(t * 0.01) + static_cast<int>(uniform_int(13, t, 16)) - 8);
  std::vector<float> cpu_losses(kLongT), gpu_losses(kLongT);
  cpu.evaluate(tokens.data(), 1, cpu_losses.data());
  cpu.zero_grads();
  const double cpu_loss = cpu.forward_backward(tokens.data(), 1, DropoutContext{}, 1.0f);

  cuda::CudaModel scorer(cpu, precision, false);
  scorer.evaluate(tokens.data(), 1, gpu_losses.data());
  cuda::CudaModel gpu(cpu, precision, true);
  gpu.zero_grads();
  const double gpu_loss = gpu.forward_backward(tokens.data(), 1, DropoutContext{}, 1.0f);
  EXPECT_NEAR(gpu_loss, cpu_loss, tol.chunk_loss);
  const std::vector<double> want = chunk_means(cpu_losses), got = chunk_means(gpu_losses);
  for (size_t k = 0; k < want.size(); ++k)
    EXPECT_NEAR(got[k], want[k], tol.chunk_loss) << "positions [" << k * kChunk << ", " << (k + 1) * kChunk << ")";
  std::vector<float> grads;
  gpu.download_grads(grads);
  for (const ParamInfo& p : cpu.params().all()) {
    EXPECT_LT(relative_error(grads, cpu.grads(), p.offset, p.size), tol.gradient) << p.name;
    for (int64_t e = p.offset; e < p.offset + p.size; ++e) ASSERT_TRUE(std::isfinite(grads[e])) << p.name;
  }
}

TEST(CudaModelLong, Fp32StepAt65536MatchesTheCpu) {
  SPT_REQUIRE_CUDA_DEVICE();
  // fp32 on both sides; sums over up to 65,536 rows in different orders.
  compare_long_step(cuda::DType::f32, {1e-4, 1e-3});
}

TEST(CudaModelLong, Bf16StepAt65536MatchesTheCpu) {
  SPT_REQUIRE_CUDA_DEVICE();
  // bf16 activations (8 significant bits, relative rounding 2^-9 per value) through two
  // layers: per-token losses within a few rounding units, gradients within ~3%, the
  // bound the shorter bf16 model tests use for whole tensors.
  compare_long_step(cuda::DType::bf16, {2e-2, 5e-2});
}

}  // namespace
}  // namespace spt

#else
TEST(CudaModelLong, NeedsACudaBuild) { GTEST_SKIP() << "built without CUDA (SPT_CUDA=OFF or no toolkit)"; }
#endif
