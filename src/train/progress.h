// Progress on a terminal: the training line (step, loss, bits, tokens/s, ETA) rewritten
// in place, one line every few steps in a log; and a phase line (validation, `spt eval`,
// sampling) shown only on a terminal. Lines are fitted to the terminal's width, dropping
// the least important fields first, so a narrow window never wraps them.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace spt {

// One field of a progress line; when the line is too wide, the field with the lowest
// priority goes first (fields of equal priority: the rightmost first).
struct LineField {
  std::string text;
  int priority = 0;
};

// The fields joined by two spaces, at most `width` - 1 characters (the last column stays
// free so a terminal never wraps); what still does not fit after dropping all but the most
// important field is cut.
std::string fit_line(const std::vector<LineField>& fields, int width);

// Columns of the terminal on `fd` (TIOCGWINSZ), else $COLUMNS, else 80.
int terminal_width(int fd);

std::string format_duration(double seconds);

class Progress {
 public:
  // quiet: prints nothing (the ranks other than 0 of a data-parallel job).
  Progress(int64_t total_steps, int64_t first_step, int log_every /*0: automatic*/, bool quiet = false);
  void step(int64_t step, double loss, double bits, double lr, double tokens_per_s);
  void note(const std::string& line);  // a whole line, kept on screen
  void clear();                        // erases the open step line (before another phase draws)

 private:
  int64_t total_, first_;
  int log_every_;
  bool tty_;
  bool quiet_;
  bool line_open_ = false;
  std::chrono::steady_clock::time_point start_;
};

// The progress of one long phase over `total` units ("windows", "tokens"): a line
// rewritten in place at most ten times a second, erased when the phase ends. Silent
// unless `out` is a terminal (a log gets only the phase's own result lines).
class PhaseProgress {
 public:
  PhaseProgress(std::string label, int64_t total, std::string unit, std::FILE* out = stderr);
  ~PhaseProgress();
  PhaseProgress(const PhaseProgress&) = delete;
  PhaseProgress& operator=(const PhaseProgress&) = delete;
  void update(int64_t done);
  void finish();  // erases the line; also done by the destructor
  // The line for `done` units after `seconds`, fitted to `width` columns.
  std::string line(int64_t done, double seconds, int width) const;

 private:
  std::string label_, unit_;
  int64_t total_;
  std::FILE* out_;
  bool tty_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace spt
