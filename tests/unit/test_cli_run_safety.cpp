// `spt train` end to end against two hazards of a run directory: a second trainer
// writing into a run that is training (it must be refused by the run lock), and a save
// that fails for want of space (the previous checkpoint must survive, the error must be
// one line naming the checkpoint).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::read_bytes;
using testing_support::TempDir;

struct Finished {
  int status = 0;
  std::string log;  // stdout and stderr
};

// Starts `spt args...` with its output in `log`; `file_limit` > 0 caps the size of any
// file it writes (RLIMIT_FSIZE, as a full disk would stop it).
pid_t start_spt(const std::vector<std::string>& args, const std::string& log, rlim_t file_limit = 0) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // Both appending, so that neither overwrites what the other wrote.
  if (!freopen(log.c_str(), "a", stderr) || !freopen(log.c_str(), "a", stdout)) _exit(126);
  if (file_limit > 0) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{file_limit, file_limit};
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  std::vector<std::string> all = {SPT_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(SPT_BINARY, argv.data());
  _exit(127);
}

Finished wait_for(pid_t pid, const std::string& log) {
  Finished f;
  waitpid(pid, &f.status, 0);
  const std::vector<char> bytes = read_bytes(log);
  f.log.assign(bytes.begin(), bytes.end());
  return f;
}

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

void write_text_data(const std::string& path) {
  std::ofstream out(path);
  for (int i = 0; i < 2000; ++i) out << "line " << i * 7919 % 1000 << " of some text\n";
}

// Fails until the run-directory lock (RUN/.lock, held by a training process) is merged:
// without it both trainers write the same metrics.jsonl, config.json and checkpoint.
TEST(CliRunSafety, SecondTrainerIntoARunThatIsTrainingIsRefused_NeedsRunLock) {
  TempDir dir("run-lock");
  const std::string data = dir / "text.txt", run = dir / "run";
  write_text_data(data);
  const pid_t first = start_spt({"train", "--preset", "tiny", "--data", data, "--steps", "1000000", "--eval-every",
                                 "0", "--save-every", "0", "--out", run}, dir / "first.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(run + "/metrics.jsonl") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(run + "/metrics.jsonl"));
  const Finished second =
      wait_for(start_spt({"train", "--preset", "tiny", "--data", data, "--steps", "2", "--out", run}, dir / "second.log"),
               dir / "second.log");
  kill(first, SIGINT);
  const Finished one = wait_for(first, dir / "first.log");
  EXPECT_TRUE(WIFEXITED(one.status) && WEXITSTATUS(one.status) == 130) << one.log;
  ASSERT_TRUE(WIFEXITED(second.status)) << second.log;
  EXPECT_EQ(WEXITSTATUS(second.status), 1) << second.log;
  EXPECT_EQ(second.log.rfind("spt: error: ", 0), 0u) << second.log;
  EXPECT_EQ(std::count(second.log.begin(), second.log.end(), '\n'), 1) << second.log;
  EXPECT_NE(second.log.find(run), std::string::npos) << second.log;
}

// A save that cannot write (the file size limit stands in for a full disk) ends the run
// with one error line naming the checkpoint (or best/) and leaves the previous checkpoint
// as it was.
TEST(CliRunSafety, FailedSaveForWantOfSpaceKeepsThePreviousCheckpoint) {
  TempDir dir("disk-full");
  const std::string data = dir / "text.txt", run = dir / "run", checkpoint = run + "/checkpoint";
  write_text_data(data);
  const Finished made = wait_for(start_spt({"train", "--preset", "tiny", "--data", data, "--steps", "2",
                                            "--eval-batches", "1", "--out", run}, dir / "made.log"),
                                 dir / "made.log");
  ASSERT_TRUE(WIFEXITED(made.status) && WEXITSTATUS(made.status) == 0) << made.log;
  std::vector<std::vector<char>> before;
  for (const char* name : {"model.safetensors", "optimizer.safetensors", "state.json"})
    before.push_back(read_bytes(checkpoint + "/" + name));

  const Finished full = wait_for(start_spt({"train", "--out", run, "--resume", "--steps", "4"}, dir / "full.log",
                                           64 << 10),
                                 dir / "full.log");
  ASSERT_TRUE(WIFEXITED(full.status)) << full.log;
  EXPECT_EQ(WEXITSTATUS(full.status), 1) << full.log;
  const std::string error = last_line(full.log);
  EXPECT_EQ(error.rfind("spt: error: ", 0), 0u) << full.log;
  // The first save of the resumed run may be best/ (its validation is a new best) or the
  // latest checkpoint: the error names the one it could not write.
  EXPECT_TRUE(error.find(checkpoint) != std::string::npos || error.find(run + "/best") != std::string::npos)
      << full.log;
  int index = 0;
  for (const char* name : {"model.safetensors", "optimizer.safetensors", "state.json"})
    EXPECT_EQ(read_bytes(checkpoint + "/" + name), before[static_cast<size_t>(index++)]) << name;
  for (const auto& entry : fs::directory_iterator(run))
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  const Finished eval = wait_for(start_spt({"eval", "--checkpoint", checkpoint, "--max-windows", "1"}, dir / "eval.log"),
                                 dir / "eval.log");
  EXPECT_TRUE(WIFEXITED(eval.status) && WEXITSTATUS(eval.status) == 0) << eval.log;
}

}  // namespace
}  // namespace spt
