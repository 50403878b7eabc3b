// The run directory of `spt train`: a lock (flock on RUN/.lock, holding the owner's pid)
// held for the whole training process, so two trainers never write one run; and cleanup
// of what this process created when the run fails before its first checkpoint.
#pragma once

#include <string>
#include <vector>

namespace spt {

class RunDirectory {
 public:
  // Creates `path` (and missing parents) when needed and locks it; a directory locked by
  // another process is refused naming that process's pid.
  explicit RunDirectory(const std::string& path);
  // When the constructor created directories and the run fails (an exception unwinds
  // through this) before keep() and before any checkpoint exists, the files a run writes and the created
  // directories are removed, so a failed run leaves nothing behind.
  ~RunDirectory();
  // Training has started: from now on its files document the run and stay.
  void keep() { kept_ = true; }
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

 private:
  std::string path_;
  std::vector<std::string> created_;  // directories this process created, innermost last
  int fd_ = -1;
  int exceptions_at_start_ = 0;
  bool kept_ = false;
};

// True when another process holds the lock of the run directory `path` (a trainer is
// running there); a lock this process holds does not count.
bool run_lock_held(const std::string& path);

}  // namespace spt
