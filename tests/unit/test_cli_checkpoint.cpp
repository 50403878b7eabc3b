// The spt binary on checkpoints and run directories: weights alone, run directories as
// --checkpoint, absolute data paths, refusals that protect checkpoints, the run lock, a
// full disk under metrics.jsonl, and SIGKILL at random moments of a training run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "core/rng.h"
#include "train/checkpoint.h"
#include "train/run_lock.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::CliResult;
using testing_support::run_spt;
using testing_support::slurp;
using testing_support::TempDir;

class CliCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text;
    for (int i = 0; text.size() < 20000; ++i) text += static_cast<char>('a' + uniform_int(5, i, 26));
    std::ofstream(dir_ / "data.txt") << text;
  }
  // Runs `spt ARGS` (in `cwd` when given) with output captured, one OpenMP thread.
  CliResult spt(const std::string& args, const std::string& cwd = "") const {
    return run_spt(dir_.path(), args, "export OMP_NUM_THREADS=1", cwd);
  }
  std::string tiny(const std::string& out, int steps) const {
    return "train --layers 1 --width 32 --heads 2 --ctx 64 --stride 8 --batch 2 --eval-batches 1 --log-every 1000 "
           "--steps " + std::to_string(steps) + " --data " + dir_ / "data.txt" + " --out " + out;
  }
  TempDir dir_{"cli-ckpt"};
};

TEST_F(CliCheckpoint, WeightsAloneAndRunDirectories) {
  ASSERT_EQ(spt(tiny(dir_ / "run", 2)).code, 0);
  EXPECT_EQ(spt("eval --max-windows 1 --checkpoint " + dir_ / "run").code, 0) << "a run directory works";
  fs::create_directory(dir_ / "share");
  fs::copy_file(dir_ / "run/checkpoint/model.safetensors", dir_ / "share/model.safetensors");
  CliResult r = spt("eval --max-windows 1 --checkpoint " + dir_ / "share");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("give --data"), std::string::npos) << r.err;
  for (const std::string& where : {dir_ / "share", dir_ / "share/model.safetensors"}) {
    r = spt("eval --max-windows 1 --data " + dir_ / "data.txt" + " --checkpoint " + where);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("no state.json"), std::string::npos) << r.err;
    r = spt("sample --length 8 --checkpoint " + where);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  r = spt("eval --checkpoint " + dir_ / "share/nothing");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("looked for"), std::string::npos) << r.err;
}

TEST_F(CliCheckpoint, DataPathIsAbsoluteAndResumeTakesData) {
  ASSERT_EQ(spt("train --layers 1 --width 32 --heads 2 --ctx 64 --stride 8 --batch 2 --steps 2 --eval-batches 1 "
                "--data data.txt --out run", dir_.path()).code, 0);
  EXPECT_NE(slurp(dir_ / "run/checkpoint/state.json").find("\"" + dir_ / "data.txt\""), std::string::npos);
  EXPECT_NE(slurp(dir_ / "run/config.json").find("\"" + dir_ / "data.txt\""), std::string::npos);
  EXPECT_EQ(spt("eval --max-windows 1 --checkpoint " + dir_ / "run", "/").code, 0);
  fs::rename(dir_ / "data.txt", dir_ / "moved.txt");
  EXPECT_EQ(spt("train --resume --steps 3 --out " + dir_ / "run").code, 1);
  const CliResult r = spt("train --resume --steps 3 --out " + dir_ / "run --data " + dir_ / "moved.txt");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(slurp(dir_ / "run/checkpoint/state.json").find(dir_ / "moved.txt"), std::string::npos);
}

TEST_F(CliCheckpoint, FailedRunLeavesNoDirectory) {
  CliResult r = spt("train --preset tiny --data " + dir_ / "missing.txt" + " --out " + dir_ / "new/run");
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(fs::exists(dir_ / "new")) << r.err;
  r = spt("train --layers 3 --width 5 --heads 2 --data " + dir_ / "data.txt" + " --out " + dir_ / "bad");
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(fs::exists(dir_ / "bad")) << r.err;
}

TEST_F(CliCheckpoint, CheckpointsAreNotOverwritten) {
  ASSERT_EQ(spt(tiny(dir_ / "run", 2)).code, 0);
  const std::string model = slurp(dir_ / "run/checkpoint/model.safetensors");
  CliResult r = spt("sample --length 8 --checkpoint " + dir_ / "run --out " + dir_ / "run/checkpoint/model.safetensors");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(dir_ / "run/checkpoint/model.safetensors"), std::string::npos) << r.err;
  r = spt("gradients --layers 1 --width 32 --heads 2 --ctx 64 --stride 8 --out " + dir_ / "run/checkpoint");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(slurp(dir_ / "run/checkpoint/model.safetensors"), model);

  // A fresh run into a directory whose only checkpoint is checkpoint.old is refused.
  fs::rename(dir_ / "run/checkpoint", dir_ / "run/checkpoint.old");
  r = spt(tiny(dir_ / "run", 2));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir_ / "run/checkpoint.old/model.safetensors"), model);
}

TEST_F(CliCheckpoint, SecondTrainerIsRefusedNamingTheHolder) {
  const RunDirectory held(dir_ / "run");
  const CliResult r = spt(tiny(dir_ / "run", 2));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("in use by another spt train (pid " + std::to_string(getpid()) + ")"), std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(CliCheckpoint, FullDiskUnderMetricsStopsAndSaves) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  fs::create_directory(dir_ / "run");
  fs::create_symlink("/dev/full", dir_ / "run/metrics.jsonl");
  const CliResult r = spt(tiny(dir_ / "run", 50) + " --save-every 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the checkpoint of step 1 is in"), std::string::npos) << r.err;
  EXPECT_EQ(read_checkpoint_info(dir_ / "run/checkpoint").state.step, 1);
}

TEST_F(CliCheckpoint, FifoStateJsonDoesNotBlock) {
  ASSERT_EQ(spt(tiny(dir_ / "run", 1)).code, 0);
  fs::remove(dir_ / "run/checkpoint/state.json");
  ASSERT_EQ(mkfifo((dir_ / "run/checkpoint/state.json").c_str(), 0644), 0);
  const CliResult r = spt("eval --checkpoint " + dir_ / "run");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("it is a FIFO"), std::string::npos) << r.err;
}

// One long run killed with SIGKILL at 50 seeded random moments and resumed each time:
// after every kill the last checkpoint evaluates and --resume continues it.
TEST_F(CliCheckpoint, KillNineAtRandomMomentsKeepsALoadableCheckpoint) {
  const std::string run = dir_ / "run";
  const std::string train = std::string(SPT_BINARY) + " " + tiny(run, 1000000) + " --save-every 1 --eval-every 0";
  const std::string resume = std::string(SPT_BINARY) + " train --resume --log-every 1000 --out " + run;
  int kills = 0;
  for (int trial = 0; kills < 50 && trial < 200; ++trial) {
    const bool started = fs::exists(run + "/checkpoint") || fs::exists(run + "/checkpoint.old");
    const pid_t child = fork();
    if (child == 0) {
      setenv("OMP_NUM_THREADS", "1", 1);
      const std::string command = "exec " + (started ? resume : train) + " >/dev/null 2>&1";
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const int delay_ms = 20 + static_cast<int>(uniform_int(11, trial, 300));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "trial " << trial << ": the run ended by itself (status " << status << ")";
    if (!fs::exists(run + "/checkpoint") && !fs::exists(run + "/checkpoint.old")) continue;  // before the first save
    ++kills;
    const CliResult r = spt("eval --max-windows 1 --checkpoint " + run);
    ASSERT_EQ(r.code, 0) << "after kill " << kills << " (" << delay_ms << " ms): " << r.err;
  }
  EXPECT_EQ(kills, 50);
  const int64_t step = read_checkpoint_info(run + "/checkpoint").state.step;
  const CliResult r = spt("train --resume --log-every 1000 --steps " + std::to_string(step + 2) + " --out " + run);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(run + "/checkpoint").state.step, step + 2);
  for (const auto& entry : fs::directory_iterator(run))
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
}

}  // namespace
}  // namespace spt
