// The whole model and training loop on the GPU against the CPU oracle: loss and every
// parameter gradient in fp32, the first training losses, bf16 against fp32 over a longer
// run, and checkpoints moving between the backends. Skipped without a CUDA device.
#include <gtest/gtest.h>

#ifdef SPT_HAVE_CUDA
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/cuda_check.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "model/cuda/cuda_model.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/engine.h"
#include "train/evaluator.h"
#include "train/trainer.h"
#include "cuda_test_util.h"
#include "test_support.h"

namespace spt {
namespace {

namespace fs = std::filesystem;

ModelConfig small_config(const std::string& pattern, const std::string& mode, int ctx) {
  ModelConfig c;
  c.layers = 2;
  c.width = 64;
  c.heads = 2;  // D = 32
  c.ctx = ctx;
  c.pattern = pattern;
  c.mode = mode;
  c.stride = 16;
  c.summary = 4;
  c.dropout = 0.1;
  c.pos_sizes = {(ctx + 15) / 16, 16};
  return c;
}

void randomize(Model& model, uint64_t seed) {
  model.init(seed);
  for (size_t e = 0; e < model.weights().size(); ++e) model.weights()[e] += 0.05f * normal01(seed + 1, e);
}

std::vector<uint8_t> random_tokens(size_t n, uint64_t seed) {
  std::vector<uint8_t> tokens(n);
  for (size_t e = 0; e < n; ++e) tokens[e] = static_cast<uint8_t>(uniform_int(seed, e, 256));
  return tokens;
}

// Relative L2 distance of two vectors over [begin, begin + n).
double relative_error(const std::vector<float>& got, const std::vector<float>& want, int64_t begin, int64_t n) {
  double diff = 0, norm = 0;
  for (int64_t e = begin; e < begin + n; ++e) {
    diff += (static_cast<double>(got[e]) - want[e]) * (static_cast<double>(got[e]) - want[e]);
    norm += static_cast<double>(want[e]) * want[e];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

TEST(CudaModel, Fp32LossAndEveryGradientMatchTheCpu) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (const auto& [pattern, mode] : std::vector<std::pair<std::string, std::string>>{
           {"dense", "merged"}, {"strided", "merged"}, {"strided", "interleaved"}, {"fixed", "merged"},
           {"fixed", "heads"}, {"local", "merged"}}) {
    for (const int ctx : {96, 128}) {  // T = 96 is not a multiple of the attention block (64)
      const ModelConfig c = small_config(pattern, mode, ctx);
      Model cpu(c);
      randomize(cpu, 3);
      const int B = 2;
      const std::vector<uint8_t> tokens = random_tokens(static_cast<size_t>(B) * ctx, 7);
      const DropoutContext dropout{5, 2, true};
      cpu.zero_grads();
      const double cpu_loss = cpu.forward_backward(tokens.data(), B, dropout, 1.0f);
      for (const bool recompute : {true, false}) {
        cuda::CudaModel gpu(cpu, cuda::DType::f32, true);
        gpu.recompute = recompute;
        gpu.zero_grads();
        const double gpu_loss = gpu.forward_backward(tokens.data(), B, dropout, 1.0f);
        EXPECT_NEAR(gpu_loss, cpu_loss, 1e-5 * std::abs(cpu_loss)) << pattern << "/" << mode << " T " << ctx;
        std::vector<float> grads;
        gpu.download_grads(grads);
        for (const ParamInfo& p : cpu.params().all()) {
          // fp32 on both sides, different summation orders over at most B*T*F terms.
          const double err = relative_error(grads, cpu.grads(), p.offset, p.size);
          EXPECT_LT(err, 2e-4) << pattern << "/" << mode << " T " << ctx << " recompute " << recompute << " "
                               << p.name;
          for (int64_t e = p.offset; e < p.offset + p.size; ++e) ASSERT_TRUE(std::isfinite(grads[e])) << p.name;
        }
      }
    }
  }
}

// half_qk: q/k of width C/2 (Dk = D/2), so the attention runs its Dk != Dv kernels and
// the fused QKV buffer is (B, T, 2*H*Dk + C).
TEST(CudaModel, HalfWidthQueriesAndKeysMatchTheCpu) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (const auto& [pattern, mode] : std::vector<std::pair<std::string, std::string>>{
           {"strided", "merged"}, {"fixed", "heads"}, {"fixed", "interleaved"}}) {
    for (const int width : {64, 128}) {  // D = 32, Dk = 16; D = 64, Dk = 32
      ModelConfig c = small_config(pattern, mode, 96);
      c.width = width;
      c.half_qk = true;
      Model cpu(c);
      randomize(cpu, 4);
      const int B = 2;
      const std::vector<uint8_t> tokens = random_tokens(static_cast<size_t>(B) * c.ctx, 8);
      const DropoutContext dropout{5, 2, true};
      cpu.zero_grads();
      const double cpu_loss = cpu.forward_backward(tokens.data(), B, dropout, 1.0f);
      cuda::CudaModel gpu(cpu, cuda::DType::f32, true);
      gpu.zero_grads();
      const double gpu_loss = gpu.forward_backward(tokens.data(), B, dropout, 1.0f);
      EXPECT_NEAR(gpu_loss, cpu_loss, 1e-5 * std::abs(cpu_loss)) << pattern << "/" << mode << " C " << width;
      std::vector<float> grads;
      gpu.download_grads(grads);
      for (const ParamInfo& p : cpu.params().all()) {
        EXPECT_LT(relative_error(grads, cpu.grads(), p.offset, p.size), 2e-4)
            << pattern << "/" << mode << " C " << width << " " << p.name;
        for (int64_t e = p.offset; e < p.offset + p.size; ++e) ASSERT_TRUE(std::isfinite(grads[e])) << p.name;
      }
      cuda::CudaModel bf16(cpu, cuda::DType::bf16, true);
      bf16.zero_grads();
      const double bf16_loss = bf16.forward_backward(tokens.data(), B, dropout, 1.0f);
      EXPECT_NEAR(bf16_loss, cpu_loss, 0.02 * std::abs(cpu_loss)) << pattern << "/" << mode << " C " << width;
    }
  }
}

TEST(CudaModel, BackwardTwiceDoublesTheGradients) {
  SPT_REQUIRE_CUDA_DEVICE();
  const ModelConfig c = small_config("strided", "merged", 96);
  Model cpu(c);
  randomize(cpu, 6);
  const std::vector<uint8_t> tokens = random_tokens(static_cast<size_t>(2) * c.ctx, 9);
  for (const cuda::DType precision : {cuda::DType::f32, cuda::DType::bf16}) {
    cuda::CudaModel gpu(cpu, precision, true);
    gpu.zero_grads();
    gpu.forward_backward(tokens.data(), 2, DropoutContext{1, 1, true}, 1.0f);
    std::vector<float> once, twice;
    gpu.download_grads(once);
    gpu.forward_backward(tokens.data(), 2, DropoutContext{1, 1, true}, 1.0f);
    gpu.download_grads(twice);
    // The second pass adds the same gradient again; a matrix product may fold the old value
    // into its fp32 accumulator at any point of its sum, so allow fp32 rounding of the sum.
    std::vector<float> doubled(once.size());
    for (size_t e = 0; e < once.size(); ++e) doubled[e] = 2.0f * once[e];
    for (const ParamInfo& p : cpu.params().all())
      EXPECT_LT(relative_error(twice, doubled, p.offset, p.size), 1e-5) << cuda::dtype_name(precision) << " " << p.name;
  }
}

TEST(CudaModel, ABatchThatDoesNotFitIsRefusedWithTheNumbers) {
  SPT_REQUIRE_CUDA_DEVICE();
  const ModelConfig c = small_config("fixed", "merged", 128);
  Model cpu(c);
  cuda::CudaModel gpu(cpu, cuda::DType::bf16, true);
  const std::vector<uint8_t> tokens = random_tokens(static_cast<size_t>(2) * c.ctx, 1);
  gpu.zero_grads();
  EXPECT_TRUE(std::isfinite(gpu.forward_backward(tokens.data(), 2, DropoutContext{}, 1.0f)));
  // 4 million sequences of 128 tokens need terabytes of activations.
  const int huge = 4 << 20;
  const std::vector<uint8_t> many(static_cast<size_t>(huge) * c.ctx, 7);
  testing_support::expect_error([&] { gpu.forward_backward(many.data(), huge, DropoutContext{}, 1.0f); },
                                {"MiB free", "--batch"});
  // The model still works at the old size afterwards.
  EXPECT_TRUE(std::isfinite(gpu.forward_backward(tokens.data(), 2, DropoutContext{}, 1.0f)));
}

TEST(CudaModel, EvaluateMatchesTheCpu) {
  SPT_REQUIRE_CUDA_DEVICE();
  const ModelConfig c = small_config("fixed", "merged", 128);
  Model cpu(c);
  randomize(cpu, 4);
  const int B = 3;
  const std::vector<uint8_t> tokens = random_tokens(static_cast<size_t>(B) * c.ctx, 8);
  std::vector<float> want(tokens.size()), got(tokens.size());
  cpu.evaluate(tokens.data(), B, want.data());
  cuda::CudaModel gpu(cpu, cuda::DType::f32, false);
  gpu.evaluate(tokens.data(), B, got.data());
  EXPECT_LT(relative_error(got, want, 0, static_cast<int64_t>(want.size())), 1e-5);
  cuda::CudaModel half(cpu, cuda::DType::bf16, false);
  half.evaluate(tokens.data(), B, got.data());
  EXPECT_LT(relative_error(got, want, 0, static_cast<int64_t>(want.size())), 2e-2);  // bf16 activations
}

class CudaTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    SPT_REQUIRE_CUDA_DEVICE();
    dir_ = fs::temp_directory_path() /
           ("spt_cuda_train_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::string text;
    const char* words[] = {"in ", "the ", "beginning ", "was ", "light ", "and ", "it ", "was ", "good. "};
    for (int i = 0; text.size() < 200000; ++i) text += words[uniform_int(3, i, 9)];
    std::ofstream(dir_ / "text.txt", std::ios::binary) << text;
  }
  void TearDown() override { fs::remove_all(dir_); }

  TrainRun run(const std::string& out, const std::string& device, const std::string& precision, int64_t steps) const {
    TrainRun r;
    r.model = small_config("fixed", "merged", 128);
    r.model.dropout = 0.0;
    r.train.batch = 4;
    r.train.steps = steps;
    r.train.warmup = 10;
    r.train.lr = 2e-3;
    r.train.eval_every = 0;
    r.train.eval_batches = 8;
    r.train.save_every = 0;
    r.data_format = "bytes";
    r.data_path = (dir_ / "text.txt").string();
    r.out_dir = (dir_ / out).string();
    r.device = device;
    r.precision = precision;
    r.log_every = 100000;
    return r;
  }

  std::vector<double> losses(const std::string& out) const {
    std::vector<double> values;
    std::ifstream in(dir_ / out / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const auto row = nlohmann::json::parse(line);
      if (row.contains("loss")) values.push_back(row["loss"].get<double>());
    }
    return values;
  }

  fs::path dir_;
};

TEST_F(CudaTraining, First20LossesMatchTheCpuInFp32) {
  ASSERT_EQ(run_training(run("cpu", "cpu", "", 20)), 0);
  ASSERT_EQ(run_training(run("gpu", "cuda", "fp32", 20)), 0);
  const std::vector<double> cpu = losses("cpu"), gpu = losses("gpu");
  ASSERT_EQ(cpu.size(), 20u);
  ASSERT_EQ(gpu.size(), 20u);
  for (size_t s = 0; s < 20; ++s) EXPECT_NEAR(gpu[s], cpu[s], 1e-4 * cpu[s]) << "step " << s + 1;
}

TEST_F(CudaTraining, Bf16StaysWithin2PercentOfFp32Over300Steps) {
  ASSERT_EQ(run_training(run("fp32", "cuda", "fp32", 300)), 0);
  ASSERT_EQ(run_training(run("bf16", "cuda", "bf16", 300)), 0);
  const std::vector<double> full = losses("fp32"), half = losses("bf16");
  ASSERT_EQ(full.size(), 300u);
  ASSERT_EQ(half.size(), 300u);
  // Compare 20-step means so that single-batch noise does not dominate.
  for (size_t s = 0; s + 20 <= 300; s += 20) {
    double a = 0, b = 0;
    for (size_t k = s; k < s + 20; ++k) a += full[k], b += half[k];
    EXPECT_NEAR(b, a, 0.02 * a) << "steps " << s + 1 << ".." << s + 20;
  }
}

// --deterministic: two bf16 runs on the fast attention path at head dim 64 (where dQ is
// otherwise accumulated in a varying order) log the same losses bit for bit.
TEST_F(CudaTraining, DeterministicRunsRepeatBitForBit) {
  for (const char* out : {"a", "b"}) {
    TrainRun r = run(out, "cuda", "bf16", 30);
    r.model.width = 128;  // D = 64
    r.deterministic = true;
    ASSERT_EQ(run_training(r), 0);
  }
  const std::vector<double> a = losses("a"), b = losses("b");
  ASSERT_EQ(a.size(), 30u);
  EXPECT_EQ(a, b);
}

TEST_F(CudaTraining, Fp16WithLossScalingTrains) {
  ASSERT_EQ(run_training(run("fp16", "cuda", "fp16", 100)), 0);
  const std::vector<double> l = losses("fp16");
  ASSERT_GE(l.size(), 90u);  // a few steps may be skipped while the scale settles
  EXPECT_LT(l.back(), l.front() * 0.8);
  const CheckpointInfo info = read_checkpoint_info((dir_ / "fp16" / "checkpoint").string());
  EXPECT_GE(info.state.loss_scale, 1.0);
}

TEST_F(CudaTraining, CheckpointsMoveBetweenBackends) {
  ASSERT_EQ(run_training(run("gpu", "cuda", "fp32", 5)), 0);
  const std::string ckpt = (dir_ / "gpu" / "checkpoint").string();
  const CheckpointInfo info = read_checkpoint_info(ckpt);
  Model model(info.model);
  load_checkpoint(ckpt, model, nullptr);
  const Dataset data = load_dataset("bytes", (dir_ / "text.txt").string());
  const EvalResult on_cpu = evaluate_split(model, data.valid, 8, 16);
  const std::unique_ptr<Engine> engine = make_engine({"cuda", "fp32", false}, model, nullptr);
  const EvalResult on_gpu = evaluate_split(*engine, info.model.ctx, data.valid, 8, 16);
  EXPECT_NEAR(on_gpu.bits_per_dim, on_cpu.bits_per_dim, 1e-5 * on_cpu.bits_per_dim);
  // The checkpoint resumes on the GPU too.
  TrainRun resume;
  resume.out_dir = (dir_ / "gpu").string();
  resume.resume = true;
  resume.train.steps = 8;
  resume.device = "cuda";
  resume.precision = "fp32";
  resume.log_every = 100000;
  ASSERT_EQ(run_training(resume), 0);
  EXPECT_EQ(read_checkpoint_info(ckpt).state.step, 8);
}

// The device keeps the average of its own weights after every step, as the CPU's
// ema_update computes it from the same weights (equal bits), and validation's swap
// restores the trained weights bit for bit.
TEST_F(CudaTraining, WeightAverageMatchesTheCpuFormulaOnTheDeviceWeights) {
  const TrainRun r = run("unused", "cuda", "bf16", 4);
  Model model(r.model);
  model.init(2);
  OptimizerState optimizer(model.params().total());
  optimizer.ema = model.weights();
  TrainConfig train = r.train;
  train.ema = 0.9;
  const std::unique_ptr<Engine> engine = make_engine({"cuda", "bf16", true}, model, &optimizer);
  const Dataset data = load_dataset("bytes", r.data_path);
  std::vector<uint8_t> tokens(static_cast<size_t>(r.train.batch) * r.model.ctx);
  std::vector<float> want = model.weights();
  for (int step = 0; step < 4; ++step) {
    training_batch(data.train, r.model.ctx, r.train.batch, 1, step, tokens.data());
    engine->zero_grads();
    engine->forward_backward(tokens.data(), r.train.batch, DropoutContext{}, 1.0f);
    ASSERT_TRUE(std::isfinite(engine->step(train, 1e-2, 1.0f)));
    engine->sync_to_host();
    ema_update(model.weights(), want, train.ema);
  }
  EXPECT_TRUE(optimizer.ema == want) << "the device average differs from the CPU formula on the same weights";
  EXPECT_TRUE(optimizer.ema != model.weights());
  const std::vector<float> trained = model.weights();
  std::vector<float> losses(tokens.size()), averaged(tokens.size());
  engine->evaluate(tokens.data(), r.train.batch, losses.data());
  engine->swap_average();
  engine->evaluate(tokens.data(), r.train.batch, averaged.data());
  engine->swap_average();
  EXPECT_TRUE(losses != averaged) << "evaluation did not use the average";
  engine->sync_to_host();
  EXPECT_TRUE(model.weights() == trained);
  EXPECT_TRUE(optimizer.ema == want);
  std::vector<float> again(tokens.size());
  engine->evaluate(tokens.data(), r.train.batch, again.data());
  EXPECT_TRUE(again == losses) << "the trained weights' copy in bf16 was not restored";
}

// A run with --ema on the GPU saves the average beside the weights and resumes it.
TEST_F(CudaTraining, WeightAverageIsSavedAndResumed) {
  TrainRun straight = run("straight", "cuda", "fp32", 6);
  straight.train.ema = 0.8;
  straight.train.eval_every = 2;
  straight.deterministic = true;
  ASSERT_EQ(run_training(straight), 0);
  TrainRun first = straight;
  first.out_dir = (dir_ / "resumed").string();
  first.stop_at = 3;
  ASSERT_EQ(run_training(first), 0);
  TrainRun second;
  second.out_dir = first.out_dir;
  second.resume = true;
  second.train.steps = 0;  // keep the checkpoint's step count
  second.device = "cuda";
  second.precision = "fp32";
  second.deterministic = true;
  second.log_every = 100000;
  ASSERT_EQ(run_training(second), 0);
  for (const char* file : {"checkpoint/model_ema.safetensors", "best/model_ema.safetensors", "best/state.json"}) {
    std::ifstream a(dir_ / "straight" / file, std::ios::binary), b(dir_ / "resumed" / file, std::ios::binary);
    const std::string x((std::istreambuf_iterator<char>(a)), {}), y((std::istreambuf_iterator<char>(b)), {});
    EXPECT_FALSE(x.empty()) << file;
    EXPECT_TRUE(x == y) << file << " differs after resume";
  }
}

}  // namespace
}  // namespace spt

#else
TEST(CudaModel, NeedsACudaBuild) { GTEST_SKIP() << "built without CUDA"; }
#endif
