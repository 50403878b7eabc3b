#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <set>
#include <thread>

#include "core/error.h"
#include "io/file_util.h"
#include "io/input_file.h"

namespace spt {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLockFile = ".lock";

std::string lock_path(const std::string& dir) { return (fs::path(dir) / kLockFile).string(); }

// The run directories this process has locked: flock conflicts between two descriptors
// of one process too, so run_lock_held must not mistake this process's own lock for
// another trainer's.
std::set<std::string>& own_locks() {
  static std::set<std::string> locks;
  return locks;
}

std::string lock_key(const std::string& dir) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(fs::absolute(dir), ec);
  return ec ? fs::absolute(dir).lexically_normal().string() : canonical.string();
}

// The pid the holder wrote into the lock file ("?" when it cannot be read).
std::string holder_pid(const std::string& path) {
  try {
    std::string text = read_text_file(path, 64);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text.empty() ? "?" : text;
  } catch (const Error&) {
    return "?";
  }
}

// The directories of `path` that do not exist yet, outermost first.
std::vector<std::string> missing_directories(const std::string& path) {
  std::vector<std::string> missing;
  std::error_code ec;
  for (fs::path p = fs::absolute(path).lexically_normal(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.insert(missing.begin(), p.string());
    if (p == p.parent_path()) break;
  }
  return missing;
}

}  // namespace

RunDirectory::RunDirectory(const std::string& path) : path_(path) {
  exceptions_at_start_ = std::uncaught_exceptions();
  created_ = missing_directories(path);
  std::error_code ec;
  fs::create_directories(path, ec);
  SPT_CHECK(fs::is_directory(path, ec), "cannot create the run directory '", path, "'",
            ec ? ": " + ec.message() : std::string(": a file of that name exists"));
  const std::string lock = lock_path(path);
  fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
  SPT_CHECK(fd_ >= 0, "cannot open the run lock '", lock, "': ", std::strerror(errno));
  // A reader checking for a running trainer holds the lock for an instant: try a few times.
  bool locked = false;
  for (int attempt = 0; attempt < 20 && !locked; ++attempt) {
    locked = ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
    if (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!locked) {
    ::close(fd_);
    fd_ = -1;
    throw Error(message("'", path, "' is in use by another spt train (pid ", holder_pid(lock),
                        "): wait for it to finish or choose another --out"));
  }
  own_locks().insert(lock_key(path));
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    throw Error(message("cannot write the run lock '", lock, "': ", std::strerror(errno)));
}

RunDirectory::~RunDirectory() {
  const bool failed = std::uncaught_exceptions() > exceptions_at_start_;
  std::error_code ec;
  const fs::path dir(path_);
  const bool has_checkpoint = fs::exists(dir / "checkpoint", ec) || fs::exists(dir / "checkpoint.old", ec);
  if (failed && !kept_ && !created_.empty() && !has_checkpoint) {
    // The directory is this process's own: what a run writes there is this run's.
    for (const char* name : {"config.json", "metrics.jsonl", kLockFile}) fs::remove(dir / name, ec);
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) fs::remove(*it, ec);  // only if empty
  }
  if (fd_ >= 0) {
    own_locks().erase(lock_key(path_));
    ::close(fd_);
  }
}

bool run_lock_held(const std::string& path) {
  if (own_locks().count(lock_key(path))) return false;
  const std::string lock = lock_path(path);
  const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases a shared lock taken just now
  return held;
}

}  // namespace spt
