// The progress line: rewritten in place on a terminal, one line every few steps in a log.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace spt {

class Progress {
 public:
  Progress(int64_t total_steps, int64_t first_step, int log_every /*0: automatic*/);
  void step(int64_t step, double loss, double bits, double lr, double tokens_per_s);
  void note(const std::string& line);  // a whole line, kept on screen

 private:
  int64_t total_, first_;
  int log_every_;
  bool tty_;
  bool line_open_ = false;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);

}  // namespace spt
