// The training loop end to end on a small byte file: resume is bit-exact (best/ and the
// weight average included), a saved checkpoint evaluates as the run did, bad runs stop
// without touching good data.
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
#include "test_support.h"
#include "train_fixture.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::slurp;
using testing_support::TrainTest;

// With and without a weight average: the latest checkpoint, best/ (weights, average,
// optimizer and state.json with its best bits and patience counter) are the same files.
TEST_F(TrainTest, ResumeIsBitExact) {
  for (const double ema : {0.0, 0.8}) {
    SCOPED_TRACE(message("ema ", ema));
    const std::string tag = ema > 0 ? "-ema" : "";
    TrainRun straight = small_run("straight" + tag);
    straight.train.ema = ema;
    straight.train.patience = 5;
    ASSERT_EQ(run_training(straight), 0);
    TrainRun first = small_run("resumed" + tag);
    first.train.ema = ema;
    first.train.patience = 5;
    first.stop_at = 3;  // not a multiple of save_every: the stop itself must save
    ASSERT_EQ(run_training(first), 0);
    EXPECT_EQ(read_checkpoint_info(first.out_dir + "/checkpoint").state.step, 3);
    TrainRun second;
    second.out_dir = first.out_dir;
    second.resume = true;
    second.train.steps = 0;  // keep the checkpoint's step count
    second.log_every = 1000;
    ASSERT_EQ(run_training(second), 0);
    std::vector<std::string> files = {"model.safetensors", "optimizer.safetensors", "state.json"};
    if (ema > 0) files.push_back("model_ema.safetensors");
    for (const char* dir : {"checkpoint", "best"})
      for (const std::string& file : files) {
        const fs::path a = fs::path(straight.out_dir) / dir / file, b = fs::path(first.out_dir) / dir / file;
        ASSERT_TRUE(fs::exists(a)) << a;
        EXPECT_TRUE(slurp(a) == slurp(b)) << dir << "/" << file << " differs";
      }
    EXPECT_EQ(fs::exists(fs::path(straight.out_dir) / "checkpoint" / "model_ema.safetensors"), ema > 0);
  }
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
  const std::string before = slurp(fs::path(ckpt) / "model.safetensors");
  TrainRun resume;
  resume.out_dir = run.out_dir;
  resume.resume = true;
  resume.train.steps = 0;
  EXPECT_EQ(run_training(resume), 1);
  EXPECT_TRUE(slurp(fs::path(ckpt) / "model.safetensors") == before);
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
  ASSERT_EQ(lines >= 3, true) << slurp(dir_ / "log.txt");
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << slurp(dir_ / "log.txt");
  EXPECT_EQ(WEXITSTATUS(status), 130) << slurp(dir_ / "log.txt");
  const CheckpointInfo info = read_checkpoint_info(out + "/checkpoint");
  EXPECT_GE(info.state.step, 3);
  EXPECT_NE(slurp(dir_ / "log.txt").find("--resume"), std::string::npos);
}

}  // namespace
}  // namespace spt
