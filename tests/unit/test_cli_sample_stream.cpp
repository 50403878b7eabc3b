// `spt sample` on a text model end to end: the text reaches a pipe token by token while the
// command still runs, samples go past the context by sliding the window, and a prompt
// longer than the context keeps its last T - 1 tokens with a notice.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

using testing_support::CliResult;
using testing_support::slurp;
using testing_support::TempDir;

class CliSample : public ::testing::Test {
 protected:
  // One training step of a model wide enough that a token takes about a millisecond to
  // decode (T 64), on random lowercase text.
  static void SetUpTestSuite() {
    dir_ = new TempDir("cli-sample");
    std::string text;
    for (int i = 0; text.size() < 20000; ++i) text += static_cast<char>('a' + uniform_int(9, i, 26));
    std::ofstream(*dir_ / "text.txt") << text;
    const CliResult r = spt("train --layers 2 --width 256 --heads 4 --ctx 64 --stride 8 --batch 1 --steps 1 "
                            "--eval-batches 1 --data " + *dir_ / "text.txt" + " --out " + *dir_ / "run");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static CliResult spt(const std::string& args) {
    return testing_support::run_spt(dir_->path(), args, "export OMP_NUM_THREADS=1");
  }
  static std::string sample() { return "sample --checkpoint " + *dir_ / "run/checkpoint "; }
  static TempDir* dir_;
};
TempDir* CliSample::dir_ = nullptr;

// Starts `spt ARGS` with stdout into a pipe (returned in *out) and stderr into `log`.
pid_t start_piped(const std::vector<std::string>& args, const std::string& log, int* out) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    if (!freopen(log.c_str(), "w", stderr)) _exit(126);
    setenv("OMP_NUM_THREADS", "1", 1);
    std::vector<char*> argv = {const_cast<char*>(SPT_BINARY)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(SPT_BINARY, argv.data());
    _exit(127);
  }
  close(fds[1]);
  *out = fds[0];
  return pid;
}

// Whatever arrives on `fd` within `seconds` (empty on a timeout or at the end of the output).
std::string read_some(int fd, double seconds) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(seconds * 1000)) <= 0) return "";
  char buffer[65536];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

// A million tokens take far longer than this test waits, so the first bytes must come while
// the command runs; a token is about a millisecond, so 4096 of them (one stdio buffer, what
// arrives at once when stdout is buffered but not flushed per token) take seconds, while the
// reader, blocked in read(), takes the first flushed token at once.
TEST_F(CliSample, TextStreamsToAPipeTokenByToken) {
  const std::string log = *dir_ / "stream.log";
  int out = -1;
  const pid_t pid = start_piped({"sample", "--checkpoint", *dir_ / "run/checkpoint", "--length", "1000000"}, log, &out);
  ASSERT_GT(pid, 0);
  const std::string first = read_some(out, 60.0);
  int status = 0;
  const bool running = waitpid(pid, &status, WNOHANG) == 0;
  kill(pid, SIGINT);
  std::string rest;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (std::string piece; std::chrono::steady_clock::now() < deadline && !(piece = read_some(out, 1.0)).empty();)
    rest += piece;
  close(out);
  waitpid(pid, &status, 0);
  EXPECT_FALSE(first.empty()) << "no output within 60 s: " << slurp(log);
  EXPECT_LT(first.size(), 4096u) << "the first output came as a whole stdio buffer, not token by token";
  EXPECT_TRUE(running) << "the first output came only when the command ended";
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 130) << slurp(log);
  EXPECT_NE(slurp(log).find("the text so far is above"), std::string::npos) << slurp(log);
  EXPECT_EQ((first + rest).back(), '\n');
}

TEST_F(CliSample, GoesPastTheContextAndCutsALongPrompt) {
  const CliResult slid = spt(sample() + "--length 200 --seed 3 --keep 8");
  ASSERT_EQ(slid.code, 0) << slid.err;
  ASSERT_EQ(slid.out.size(), 201u);  // the text and a newline
  EXPECT_EQ(slid.out.substr(0, 64), spt(sample() + "--length 64 --seed 3").out.substr(0, 64));
  const CliResult keep = spt(sample() + "--length 200 --keep 64");
  EXPECT_EQ(keep.code, 1);
  EXPECT_NE(keep.err.find("--keep 64"), std::string::npos) << keep.err;

  std::string prompt;
  for (int i = 0; i < 150; ++i) prompt += static_cast<char>('a' + i % 26);
  std::ofstream(*dir_ / "prompt.txt") << prompt;
  const CliResult cut = spt(sample() + "--length 100 --prompt-file " + *dir_ / "prompt.txt");
  ASSERT_EQ(cut.code, 0) << cut.err;
  EXPECT_NE(cut.err.find("the prompt has 150 tokens, more than the context of 64 holds: keeping its last 63"),
            std::string::npos)
      << cut.err;
  EXPECT_EQ(cut.out.substr(0, 63), prompt.substr(150 - 63));
  EXPECT_EQ(cut.out.size(), 101u);
}

}  // namespace
}  // namespace spt
