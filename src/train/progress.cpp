#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace spt {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char buffer[32];
  if (s >= 3600) std::snprintf(buffer, sizeof buffer, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(buffer, sizeof buffer, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buffer, sizeof buffer, "%lds", s);
  return buffer;
}

Progress::Progress(int64_t total_steps, int64_t first_step, int log_every)
    : total_(total_steps), first_(first_step), tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {
  log_every_ = log_every > 0 ? log_every : static_cast<int>(std::clamp<int64_t>(total_steps / 50, 1, 100));
}

void Progress::step(int64_t step, double loss, double bits, double lr, double tokens_per_s) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = elapsed / static_cast<double>(std::max<int64_t>(1, step - first_)) * (total_ - step);
  if (!tty_ && step % log_every_ != 0 && step != total_) return;
  std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f  bits %.4f  lr %.2e  %.0f tok/s  ETA %s%s", tty_ ? "\r\033[K" : "",
               static_cast<long long>(step), static_cast<long long>(total_), loss, bits, lr, tokens_per_s,
               format_duration(eta).c_str(), tty_ ? "" : "\n");
  line_open_ = tty_;
  std::fflush(stderr);
}

void Progress::note(const std::string& line) {
  std::fprintf(stderr, "%s%s\n", line_open_ ? "\n" : "", line.c_str());
  line_open_ = false;
  std::fflush(stderr);
}

}  // namespace spt
