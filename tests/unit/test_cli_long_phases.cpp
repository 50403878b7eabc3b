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
#include <thread>

#include "core/rng.h"
#include "temp_dir.h"
#include "test_support.h"
#include "train/checkpoint.h"

namespace spt {
namespace {

using testing_support::CliResult;
using testing_support::slurp;
using testing_support::TempDir;
using Clock = std::chrono::steady_clock;

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

CliResult run_spt(const std::string& args, const TempDir& dir) { return testing_support::run_spt(dir.path(), args); }

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
    const CliResult r = run_spt(sample + bad, *dir_);
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_NE(r.err.find("spt: error:"), std::string::npos) << bad << ": " << r.err;
  }
  EXPECT_NE(run_spt(sample + "--count 2000000000", *dir_).err.find("MiB"), std::string::npos);
  const CliResult jpg = run_spt(sample + "--out " + *dir_ / "s.jpg", *dir_);
  EXPECT_EQ(jpg.code, 1);
  EXPECT_NE(jpg.err.find(".jpg"), std::string::npos) << jpg.err;
  EXPECT_NE(jpg.err.find(".txt"), std::string::npos) << jpg.err;
  EXPECT_EQ(run_spt(sample + "--out " + *dir_ / "s.png", *dir_).code, 1);  // a text model makes no pictures

  ASSERT_EQ(run_spt(sample + "--count 2 --length 20 --out " + *dir_ / "s.raw", *dir_).code, 0);
  EXPECT_EQ(slurp(*dir_ / "s.raw").size(), 40u);  // the bytes, no headers or newlines
  const CliResult greedy = run_spt(sample + "--length 30 --temperature 0", *dir_);
  const CliResult top1 = run_spt(sample + "--length 30 --top-k 1 --seed 5", *dir_);
  ASSERT_EQ(greedy.code, 0);
  EXPECT_EQ(top1.out, greedy.out);
  ASSERT_EQ(run_spt(sample + "--length 30 --seed 4 --top-p 0.9 --out " + *dir_ / "s.txt", *dir_).code, 0);
  EXPECT_EQ(run_spt(sample + "--length 30 --seed 4 --top-p 0.9", *dir_).out, slurp(*dir_ / "s.txt"));
}

// 4x4 grayscale images in IDX files, and a one-step model of them.
TEST(SampleImages, RefusesTheTerminalAndWritesScaledGridsByExtension) {
  TempDir dir("sample-images");
  std::filesystem::create_directories(dir / "idx");
  for (auto [name, count] : {std::pair{"train-images-idx3-ubyte", 64}, std::pair{"t10k-images-idx3-ubyte", 8}}) {
    std::string bytes = {0, 0, 8, 3, 0, 0, 0, static_cast<char>(count), 0, 0, 0, 4, 0, 0, 0, 4};
    for (int i = 0; i < count * 16; ++i) bytes += static_cast<char>(uniform_int(6, i, 256));
    std::ofstream(dir / "idx/" + name, std::ios::binary) << bytes;
  }
  ASSERT_EQ(run_spt("train --data " + dir / "idx" + " --data-format idx --layers 1 --width 16 --heads 2 --ctx 16 "
                    "--stride 4 --pos-sizes 4,4,1 --steps 1 --out " + dir / "run",
                    dir).code,
            0);
  const std::string sample = std::string(SPT_BINARY) + " sample --checkpoint " + dir / "run/checkpoint";
  // `script` gives the command a terminal as stdout.
  const int tty = std::system(("script -eqc '" + sample + "' /dev/null >" + dir / "tty.txt" + " 2>&1").c_str());
  EXPECT_EQ(WEXITSTATUS(tty), 1);
  EXPECT_NE(slurp(dir / "tty.txt").find("--out samples.png"), std::string::npos) << slurp(dir / "tty.txt");
  const CliResult jpg = run_spt("sample --checkpoint " + dir / "run/checkpoint" + " --out " + dir / "s.jpg", dir);
  EXPECT_EQ(jpg.code, 1);
  EXPECT_NE(jpg.err.find(".png, .raw, .bin"), std::string::npos) << jpg.err;
  const CliResult longer = run_spt("sample --checkpoint " + dir / "run/checkpoint" + " --length 17 --out " + dir / "l.png", dir);
  EXPECT_EQ(longer.code, 1);
  EXPECT_NE(longer.err.find("one image of 4 x 4 x 1 = 16 tokens"), std::string::npos) << longer.err;
  const CliResult piped = run_spt("sample --checkpoint " + dir / "run/checkpoint" + " --count 2", dir);
  EXPECT_EQ(piped.out.size(), 32u);  // not a terminal: the raw bytes
  ASSERT_EQ(run_spt("sample --checkpoint " + dir / "run/checkpoint" + " --count 4 --out " + dir / "g.png", dir).code, 0);
  ASSERT_EQ(run_spt("sample --checkpoint " + dir / "run/checkpoint" + " --count 4 --prefix-rows 2 --scale 3 --out " +
                        dir / "c.png",
                    dir).code,
            0);
  const std::string grid = slurp(dir / "g.png"), completions = slurp(dir / "c.png");
  auto png_size = [](const std::string& png) {  // width and height from the IHDR chunk
    auto word = [&](size_t at) {
      return (uint8_t(png[at]) << 24) | (uint8_t(png[at + 1]) << 16) | (uint8_t(png[at + 2]) << 8) | uint8_t(png[at + 3]);
    };
    return std::pair{word(16), word(20)};
  };
  ASSERT_GE(grid.size(), 24u);
  EXPECT_EQ(png_size(grid), (std::pair{11 * 47, 11 * 47}));  // 2 x 2 cells of 4 + 3 borders, scaled to >= 512
  ASSERT_GE(completions.size(), 24u);
  EXPECT_EQ(png_size(completions), (std::pair{3 * (2 * 14 + 3), 3 * (2 * 4 + 3)}));  // cells: 2 + 4 + 2 + 4 + 2
}

}  // namespace
}  // namespace spt
