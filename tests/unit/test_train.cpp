// The training loop end to end on a small byte file: resume is bit-exact, a saved
// checkpoint evaluates as the run did, bad runs stop without touching good data.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "train/checkpoint.h"
#include "train/evaluator.h"
#include "train/trainer.h"

namespace spt {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spt_train_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Text with structure (repeated words) and some noise, 24 KB.
    std::string text;
    const char* words[] = {"the ", "light ", "of ", "day ", "and ", "night ", "was ", "good. "};
    for (int i = 0; text.size() < 24000; ++i) {
      text += words[uniform_int(3, i, 8)];
      if (i % 11 == 0) text += static_cast<char>('A' + uniform_int(4, i, 26));
    }
    std::ofstream(dir_ / "text.txt", std::ios::binary) << text;
  }
  void TearDown() override { fs::remove_all(dir_); }

  TrainRun small_run(const std::string& out) const {
    TrainRun run;
    run.model.layers = 2;
    run.model.width = 32;
    run.model.heads = 2;
    run.model.ctx = 32;
    run.model.pattern = "fixed";
    run.model.stride = 8;
    run.model.summary = 2;
    run.model.dropout = 0.1;
    run.model.pos_sizes = {4, 8};
    run.train.batch = 3;
    run.train.accumulate = 2;
    run.train.steps = 6;
    run.train.warmup = 2;
    run.train.lr = 3e-3;
    run.train.eval_every = 2;
    run.train.eval_batches = 4;
    run.train.save_every = 2;
    run.data_format = "bytes";
    run.data_path = (dir_ / "text.txt").string();
    run.out_dir = (dir_ / out).string();
    run.log_every = 1000;
    return run;
  }

  fs::path dir_;
};

TEST_F(TrainTest, ResumeIsBitExact) {
  ASSERT_EQ(run_training(small_run("straight")), 0);
  TrainRun first = small_run("resumed");
  first.stop_at = 3;  // not a multiple of save_every: the stop itself must save
  ASSERT_EQ(run_training(first), 0);
  EXPECT_EQ(read_checkpoint_info(first.out_dir + "/checkpoint").state.step, 3);
  TrainRun second;
  second.out_dir = first.out_dir;
  second.resume = true;
  second.train.steps = 0;  // keep the checkpoint's step count
  second.log_every = 1000;
  ASSERT_EQ(run_training(second), 0);
  for (const char* file : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_TRUE(read_bytes(dir_ / "straight" / "checkpoint" / file) == read_bytes(dir_ / "resumed" / "checkpoint" / file))
        << file << " differs";
}

TEST_F(TrainTest, TimeLimitSavesAndStops) {
  TrainRun run = small_run("timed");
  run.train.steps = 1000000;
  run.time_limit = 1e-9;  // spent by the first step
  ASSERT_EQ(run_training(run), 0);
  const CheckpointInfo info = read_checkpoint_info(run.out_dir + "/checkpoint");
  EXPECT_EQ(info.state.step, 1);
  EXPECT_EQ(info.train.steps, 1000000);
}

TEST_F(TrainTest, CheckpointEvaluatesAsTheRunDid) {
  const TrainRun run = small_run("run");
  ASSERT_EQ(run_training(run), 0);
  double logged = -1;
  std::ifstream metrics(run.out_dir + "/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.contains("valid_bits")) logged = row["valid_bits"].get<double>();
  }
  ASSERT_GT(logged, 0);
  const CheckpointInfo info = read_checkpoint_info(run.out_dir + "/checkpoint");
  Model model(info.model);
  load_checkpoint(run.out_dir + "/checkpoint", model, nullptr);
  const Dataset data = load_dataset("bytes", run.data_path);
  const EvalResult r = evaluate_split(model, data.valid, 8, run.train.eval_batches);
  EXPECT_EQ(r.bits_per_dim, logged);
  EXPECT_EQ(info.state.last_valid_bits, logged);
  EXPECT_LT(logged, 8.0);  // it learned something in 6 steps
}

TEST_F(TrainTest, RefusesToOverwriteAndStopsOnNonFiniteLoss) {
  TrainRun run = small_run("run");
  run.stop_at = 2;
  ASSERT_EQ(run_training(run), 0);
  EXPECT_THROW(run_training(small_run("run")), Error);  // a new run into a used directory

  // Poison one weight (a checkpoint that loads, its values finite, but gives a non-finite
  // loss: NaN weights themselves are refused on load), then resume.
  const std::string ckpt = run.out_dir + "/checkpoint";
  const CheckpointInfo info = read_checkpoint_info(ckpt);
  Model model(info.model);
  OptimizerState optimizer(static_cast<int64_t>(model.weights().size()));
  load_checkpoint(ckpt, model, &optimizer);
  model.weights()[model.params().find("blocks.0.attn.qkv.weight").offset] = 3e38f;
  save_checkpoint(ckpt, model, &optimizer, info.train, info.state);
  const std::string before = read_bytes(fs::path(ckpt) / "model.safetensors");
  TrainRun resume;
  resume.out_dir = run.out_dir;
  resume.resume = true;
  resume.train.steps = 0;
  EXPECT_EQ(run_training(resume), 1);
  EXPECT_TRUE(read_bytes(fs::path(ckpt) / "model.safetensors") == before);
  EXPECT_EQ(read_checkpoint_info(ckpt).state.step, 2);
}

TEST_F(TrainTest, BadDataIsRefusedBeforeAnythingIsWritten) {
  TrainRun run = small_run("run");
  run.data_path = (dir_ / "missing.txt").string();
  EXPECT_THROW(run_training(run), Error);
  EXPECT_FALSE(fs::exists(dir_ / "run" / "checkpoint"));
  run = small_run("run");
  run.model.stride = 0;
  EXPECT_THROW(run_training(run), Error);
}

TEST_F(TrainTest, InterruptSavesAndExitsCleanly) {
  const std::string out = (dir_ / "run").string();
  const std::string data = (dir_ / "text.txt").string();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string log = (dir_ / "log.txt").string();
    freopen(log.c_str(), "w", stderr);
    freopen(log.c_str(), "a", stdout);
    execl(SPT_BINARY, SPT_BINARY, "train", "--preset", "tiny", "--data", data.c_str(), "--steps", "1000000",
          "--eval-every", "0", "--save-every", "0", "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int lines = 0;
  while (lines < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream metrics(out + "/metrics.jsonl");
    lines = 0;
    for (std::string line; std::getline(metrics, line);) ++lines;
  }
  ASSERT_EQ(lines >= 3, true) << read_bytes(dir_ / "log.txt");
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << read_bytes(dir_ / "log.txt");
  EXPECT_EQ(WEXITSTATUS(status), 130) << read_bytes(dir_ / "log.txt");
  const CheckpointInfo info = read_checkpoint_info(out + "/checkpoint");
  EXPECT_GE(info.state.step, 3);
  EXPECT_NE(read_bytes(dir_ / "log.txt").find("--resume"), std::string::npos);
}

}  // namespace
}  // namespace spt
