// Runs one spt command line in a child process under a memory limit and a deadline, with
// its stderr captured through a pipe, and classifies the outcome.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_case.h"

namespace spt::fuzz {

struct Limits {
  int64_t address_space = int64_t{2} << 30;  // RLIMIT_AS of every child
  // Beyond this a child is killed and counted as a hang. A case takes well under a second
  // alone; the margin keeps a machine busy with other tests (ctest -j) from reading as a hang.
  double timeout_s = 30;
};

struct RunResult {
  int status = 0;          // as from waitpid
  bool timed_out = false;
  std::string err;         // the first kMaxCaptured bytes of stderr
  int64_t err_bytes = 0;   // all of it
  double seconds = 0;
};

// A child running `spt args...`: forked only, calling the CLI's run_main (the same code the
// executable runs), or exec'ing the real binary when `binary` is not empty.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::string& binary, const Limits& limits);
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  int fd() const { return fd_; }
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }
  // Reads what stderr has; false once it is closed.
  bool read_some();
  // Kills the child when it is past its deadline, then waits for it.
  RunResult finish(bool kill_it);

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::chrono::steady_clock::time_point start_, deadline_;
  RunResult result_;
};

enum class Verdict { accepted, refused, failure };
struct Outcome {
  Verdict verdict = Verdict::failure;
  std::string failure;  // the class of failure ("crash (signal 11)", "silent acceptance", ...)
};

Outcome classify(const Command& command, const RunResult& result);
std::string describe(const RunResult& result);  // exit status and stderr, shortened, for reports

}  // namespace spt::fuzz
