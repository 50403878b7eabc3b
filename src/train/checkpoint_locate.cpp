// Finding a checkpoint from what the user typed (a checkpoint directory, a run directory,
// a lone model.safetensors), reading it safely while a trainer saves into it, removing
// temporaries of killed saves, and keeping other commands' outputs off checkpoint files.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <set>
#include <vector>
#include <thread>

#include "core/error.h"
#include "train/checkpoint_internal.h"
#include "train/run_lock.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using namespace checkpoint_detail;

bool path_exists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec)) || fs::exists(path, ec);
}

bool is_dir(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

// A `.tmp-<pid>` suffix: the pid, or -1.
long temp_owner(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stol(digits);
}

// A directory that holds a checkpoint's files: the checkpoint itself.
Located checkpoint_in(const fs::path& dir) {
  Located found;
  found.dir = dir.string();
  found.model_file = (dir / kModelFile).string();
  found.has_state = path_exists(dir / kStateFile);
  SPT_CHECK(found.has_state || !path_exists(dir / kOptimizerFile), "'", (dir / kStateFile).string(),
            "' is missing, so the checkpoint '", dir.string(), "' is incomplete and cannot be resumed; to use its ",
            "weights alone, give --checkpoint ", found.model_file);
  return found;
}

Located locate_path(const std::string& dir) {
  const fs::path path(dir);
  if (path_exists(path) && !is_dir(path)) {
    SPT_CHECK(path.extension() == ".safetensors", "'", dir, "' is not a checkpoint: give a checkpoint directory ",
              "(RUN/checkpoint), a run directory or a model .safetensors file");
    if (path.filename() == kModelFile && path_exists(path.parent_path() / kStateFile)) {
      Located found = checkpoint_in(path.parent_path());
      found.named_file = true;
      return found;
    }
    return {path.parent_path().empty() ? std::string(".") : path.parent_path().string(), dir, false, true};
  }
  if (path_exists(path / kStateFile) || path_exists(path / kModelFile) || path_exists(path / kOptimizerFile)) return checkpoint_in(path);
  if (is_dir(path / "checkpoint") || is_dir(path / "checkpoint.old"))
    return locate_checkpoint((path / "checkpoint").string());  // a run directory
  const std::string old = dir + ".old";
  if (!path_exists(path) && is_dir(old)) {
    note_once(message("'", dir, "' is missing but '", old, "' exists (a save was interrupted); loading '", old, "'"));
    return checkpoint_in(old);
  }
  throw Error(message("no checkpoint at '", dir, "': ", path_exists(path) ? "" : "it does not exist; ",
                      "looked for ", dir, "/", kStateFile, " with ", kModelFile, ", a lone ", kModelFile, ", and ", dir,
                      "/checkpoint (a run directory)"));
}

}  // namespace

namespace checkpoint_detail {

namespace {

struct Notes {
  std::set<std::string> printed;
  std::vector<std::string> held;
  int holders = 0;  // open HeldNotes scopes
};

Notes& notes() {
  static Notes all;
  return all;
}

}  // namespace

void note_once(const std::string& text) {
  Notes& n = notes();
  if (n.printed.count(text) || std::find(n.held.begin(), n.held.end(), text) != n.held.end()) return;
  if (n.holders > 0) return n.held.push_back(text);
  n.printed.insert(text);
  std::fprintf(stderr, "spt: note: %s\n", text.c_str());
}

HeldNotes::HeldNotes() : exceptions_(std::uncaught_exceptions()) { ++notes().holders; }

HeldNotes::~HeldNotes() {
  Notes& n = notes();
  if (--n.holders > 0) return;
  std::vector<std::string> held;
  held.swap(n.held);
  if (std::uncaught_exceptions() > exceptions_) return;
  for (const std::string& text : held) note_once(text);
}

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

Located locate_checkpoint(const std::string& requested) {
  return locate_path(strip_trailing_slashes(requested));
}

bool save_in_progress(const std::string& requested, bool& swapping) {
  swapping = false;
  fs::path dir = fs::absolute(strip_trailing_slashes(requested)).lexically_normal();
  if (is_dir(dir / "checkpoint") || is_dir(dir / "checkpoint.old")) dir /= "checkpoint";
  if (dir.filename() == kModelFile) dir = dir.parent_path();
  std::string base = dir.filename().string();
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".old") == 0) base.resize(base.size() - 4);
  // Only a live writer makes a retry worth it: a temporary whose process runs (a save
  // writes it until its final rename) or the run lock held by another process (a trainer
  // that may swap files between the reader's reads). A lone .old or a dead process's
  // temporary is what a killed save left: damage there is final, and is reported at once.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir.parent_path(), ec)) {
    const long pid = temp_owner(entry.path().filename().string(), base + ".tmp-");
    swapping = swapping || (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM));
  }
  return swapping || run_lock_held(dir.parent_path().string());
}

void wait_before_retry(const std::string& requested, int attempt, const Error&) {
  // Saves can take seconds for large models: wait while one visibly writes its temporary
  // (up to about a minute); a trainer between saves gets a few quick retries.
  bool swapping = false;
  const bool saving = save_in_progress(requested, swapping);
  if (!saving || attempt >= (swapping ? 600 : 5)) throw;
  std::this_thread::sleep_for(std::chrono::milliseconds(swapping ? 100 : 50));
}

}  // namespace checkpoint_detail

void remove_stale_checkpoint_temps(const std::string& checkpoint_dir, bool run_locked) {
  const fs::path dir = fs::absolute(strip_trailing_slashes(checkpoint_dir)).lexically_normal();
  const std::string prefix = dir.filename().string() + ".tmp-";
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(dir.parent_path(), ec)) {
    const long pid = temp_owner(entry.path().filename().string(), prefix);
    if (pid <= 0 || pid == ::getpid()) continue;
    // Holding the run lock, no other process can be saving here; otherwise only a
    // temporary whose process is gone is stale.
    if (run_locked || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) stale.push_back(entry.path());
  }
  for (const fs::path& path : stale) fs::remove_all(path, ec);
}

bool is_checkpoint_directory(const std::string& dir) {
  const fs::path path(strip_trailing_slashes(dir));
  return is_dir(path) && (path_exists(path / kStateFile) || path_exists(path / kOptimizerFile));
}

void refuse_checkpoint_overwrite(const std::string& path, const std::string& flag) {
  const fs::path target(strip_trailing_slashes(path));
  SPT_CHECK(!is_checkpoint_directory(target.string()), flag, " '", path,
            "' is a checkpoint directory: writing there would destroy the checkpoint; choose another path");
  const std::string name = target.filename().string();
  const bool checkpoint_name = name == kModelFile || name == kOptimizerFile || name == kStateFile || name == kEmaFile;
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  SPT_CHECK(!is_checkpoint_directory(parent.string()), flag, " '", path, "' is inside the checkpoint directory '",
            parent.string(), "': writing there would destroy the checkpoint; choose another path");
  SPT_CHECK(!(checkpoint_name && path_exists(target)), flag, " '", path,
            "' is an existing checkpoint file: writing it would destroy it; choose another path");
}

}  // namespace spt
