// `spt train`, `spt eval` and `spt sample` end to end: Ctrl-C during a long validation or
// evaluation ends the command within about a second with exit 130 (train saves first), and
// `spt sample` refuses bad sizes and unknown formats and writes raw bytes without headers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/rng.h"
#include "temp_dir.h"
#include "train/checkpoint.h"

namespace spt {
namespace {

using testing_support::TempDir;
using Clock = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts `spt <args>` with stdout and stderr in `log`.
pid_t start_spt(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    freopen(log.c_str(), "a", stdout);
    std::vector<char*> argv = {const_cast<char*>(SPT_BINARY)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(SPT_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

// Sends SIGINT and returns the exit status and the seconds until the process ended.
std::pair<int, double> interrupt(pid_t pid) {
  const auto sent = Clock::now();
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, std::chrono::duration<double>(Clock::now() - sent).count()};
}

struct SptRun {
  int code = -1;
  std::string out, err;
};

SptRun run_spt(const std::string& args, const TempDir& dir) {
  const std::string out = dir / "stdout", err = dir / "stderr";
  const int status = std::system((std::string(SPT_BINARY) + " " + args + " >" + out + " 2>" + err).c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// A text large enough that a whole-split pass of the tiny preset takes several seconds.
class LongPhases : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("long-phases");
    std::string text;
    const char* words[] = {"the ", "light ", "of ", "day ", "and ", "night ", "was ", "good. "};
    for (int i = 0; text.size() < 8'000'000; ++i) text += words[uniform_int(3, i, 8)];
    std::ofstream(*dir_ / "text.txt", std::ios::binary) << text;
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* LongPhases::dir_ = nullptr;

TEST_F(LongPhases, CtrlCDuringValidationSavesTheStepAndStops) {
  const std::string out = *dir_ / "run", log = *dir_ / "train.log";
  const pid_t pid = start_spt({"train", "--preset", "tiny", "--data", *dir_ / "text.txt", "--out", out, "--steps",
                               "100", "--eval-every", "2", "--eval-batches", "0", "--eval-batch", "1"},
                              log);
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (slurp(out + "/metrics.jsonl").find("\"step\":2,") == std::string::npos && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // well inside the validation pass
  const auto [code, seconds] = interrupt(pid);
  EXPECT_EQ(code, 130) << slurp(log);
  EXPECT_LT(seconds, 2.0) << "validation ignored Ctrl-C: " << slurp(log);
  EXPECT_EQ(slurp(out + "/metrics.jsonl").find("valid_bits"), std::string::npos);  // abandoned, not logged
  EXPECT_EQ(read_checkpoint_info(out + "/checkpoint").state.step, 2);
  EXPECT_NE(slurp(log).find("--resume"), std::string::npos);
}

TEST_F(LongPhases, CtrlCDuringEvalStops) {
  const std::string out = *dir_ / "short", log = *dir_ / "eval.log";
  ASSERT_EQ(run_spt("train --preset tiny --data " + *dir_ / "text.txt" + " --out " + out +
                        " --steps 1 --eval-batches 2",
                    *dir_).code,
            0);
  const pid_t pid = start_spt({"eval", "--checkpoint", out + "/checkpoint", "--split", "train", "--batch", "1"}, log);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // loaded, evaluating 7.2 MB
  const auto [code, seconds] = interrupt(pid);
  EXPECT_EQ(code, 130) << slurp(log);
  EXPECT_LT(seconds, 2.0) << slurp(log);
  EXPECT_NE(slurp(log).find("interrupted"), std::string::npos) << slurp(log);
  EXPECT_TRUE(std::filesystem::exists(out + "/loss.png"));
}

TEST_F(LongPhases, SampleChecksItsFlagsAndFormats) {
  const std::string out = *dir_ / "sampled";
  ASSERT_EQ(run_spt("train --preset tiny --data " + *dir_ / "text.txt" + " --out " + out +
                        " --steps 1 --eval-batches 2",
                    *dir_).code,
            0);
  const std::string sample = "sample --checkpoint " + out + "/checkpoint ";
  for (const char* bad : {"--length -1", "--count 0", "--top-k 0", "--top-k 300", "--top-p 0", "--top-p 1.5",
                          "--count 2000000000"}) {
    const SptRun r = run_spt(sample + bad, *dir_);
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_NE(r.err.find("spt: error:"), std::string::npos) << bad << ": " << r.err;
  }
  EXPECT_NE(run_spt(sample + "--count 2000000000", *dir_).err.find("MiB"), std::string::npos);
  const SptRun jpg = run_spt(sample + "--out " + *dir_ / "s.jpg", *dir_);
  EXPECT_EQ(jpg.code, 1);
  EXPECT_NE(jpg.err.find(".jpg"), std::string::npos) << jpg.err;
  EXPECT_NE(jpg.err.find(".txt"), std::string::npos) << jpg.err;
  EXPECT_EQ(run_spt(sample + "--out " + *dir_ / "s.png", *dir_).code, 1);  // a text model makes no pictures

  ASSERT_EQ(run_spt(sample + "--count 2 --length 20 --out " + *dir_ / "s.raw", *dir_).code, 0);
  EXPECT_EQ(slurp(*dir_ / "s.raw").size(), 40u);  // the bytes, no headers or newlines
  const SptRun greedy = run_spt(sample + "--length 30 --temperature 0", *dir_);
  const SptRun top1 = run_spt(sample + "--length 30 --top-k 1 --seed 5", *dir_);
  ASSERT_EQ(greedy.code, 0);
  EXPECT_EQ(top1.out, greedy.out);
  ASSERT_EQ(run_spt(sample + "--length 30 --seed 4 --top-p 0.9 --out " + *dir_ / "s.txt", *dir_).code, 0);
  EXPECT_EQ(run_spt(sample + "--length 30 --seed 4 --top-p 0.9", *dir_).out, slurp(*dir_ / "s.txt"));
}

}  // namespace
}  // namespace spt
