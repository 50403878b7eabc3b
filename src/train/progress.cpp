#include "train/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace spt {
namespace {

constexpr const char* kEraseLine = "\r\033[K";

std::string join(const std::vector<LineField>& fields, const std::vector<bool>& kept) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (!kept[i]) continue;
    if (!line.empty()) line += "  ";
    line += fields[i].text;
  }
  return line;
}

std::string format_number(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

}  // namespace

std::string fit_line(const std::vector<LineField>& fields, int width) {
  const size_t limit = static_cast<size_t>(std::max(1, width - 1));
  std::vector<bool> kept(fields.size(), true);
  std::string line = join(fields, kept);
  for (size_t left = fields.size(); line.size() > limit && left > 1; --left) {
    size_t drop = fields.size();
    for (size_t i = 0; i < fields.size(); ++i)
      if (kept[i] && (drop == fields.size() || fields[i].priority <= fields[drop].priority)) drop = i;
    kept[drop] = false;
    line = join(fields, kept);
  }
  if (line.size() > limit) line.resize(limit);
  return line;
}

int terminal_width(int fd) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    const int value = std::atoi(columns);
    if (value > 0) return value;
  }
  return 80;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char buffer[32];
  if (s >= 3600) std::snprintf(buffer, sizeof buffer, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(buffer, sizeof buffer, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buffer, sizeof buffer, "%lds", s);
  return buffer;
}

Progress::Progress(int64_t total_steps, int64_t first_step, int log_every, bool quiet)
    : total_(total_steps),
      first_(first_step),
      tty_(isatty(STDERR_FILENO) != 0),
      quiet_(quiet),
      start_(std::chrono::steady_clock::now()) {
  log_every_ = log_every > 0 ? log_every : static_cast<int>(std::clamp<int64_t>(total_steps / 50, 1, 100));
}

void Progress::step(int64_t step, double loss, double bits, double lr, double tokens_per_s) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = elapsed / static_cast<double>(std::max<int64_t>(1, step - first_)) * (total_ - step);
  if (quiet_ || (!tty_ && step % log_every_ != 0 && step != total_)) return;
  // Priorities: the step and the bits matter most, then the ETA, the loss, the speed, the rate.
  const std::vector<LineField> fields = {
      {"step " + std::to_string(step) + "/" + std::to_string(total_), 9},
      {format_number("loss %.4f", loss), 5},
      {format_number("bits %.4f", bits), 8},
      {format_number("lr %.2e", lr), 1},
      {format_number("%.0f tok/s", tokens_per_s), 3},
      {"ETA " + format_duration(eta), 7}};
  const std::string line = fit_line(fields, tty_ ? terminal_width(STDERR_FILENO) : 1 << 20);
  std::fprintf(stderr, "%s%s%s", tty_ ? kEraseLine : "", line.c_str(), tty_ ? "" : "\n");
  line_open_ = tty_;
  std::fflush(stderr);
}

void Progress::note(const std::string& line) {
  if (quiet_) return;
  std::fprintf(stderr, "%s%s\n", line_open_ ? "\n" : "", line.c_str());
  line_open_ = false;
  std::fflush(stderr);
}

void Progress::clear() {
  if (!line_open_) return;
  std::fputs(kEraseLine, stderr);
  std::fflush(stderr);
  line_open_ = false;
}

PhaseProgress::PhaseProgress(std::string label, int64_t total, std::string unit, std::FILE* out)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      out_(out),
      tty_(isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

PhaseProgress::~PhaseProgress() { finish(); }

std::string PhaseProgress::line(int64_t done, double seconds, int width) const {
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1.0;
  const double percent = total_ > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
  const std::vector<LineField> fields = {
      {label_, 9},
      {std::to_string(done) + "/" + std::to_string(total_) + " " + unit_, 6},
      {format_number("%.0f%%", percent), 8},
      {format_number("%.0f ", rate) + unit_ + "/s", 3},
      {"ETA " + format_duration(eta), 7},
      {"(Ctrl-C stops)", 1}};
  return fit_line(fields, width);
}

void PhaseProgress::update(int64_t done) {
  if (!tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  std::fprintf(out_, "%s%s", kEraseLine, line(done, seconds, terminal_width(fileno(out_))).c_str());
  std::fflush(out_);
  drawn_ = true;
}

void PhaseProgress::finish() {
  if (!drawn_) return;
  std::fputs(kEraseLine, out_);
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace spt
