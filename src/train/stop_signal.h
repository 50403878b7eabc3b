// Ctrl-C (SIGINT) and SIGTERM as a request to stop at the next safe point: every long
// phase (training steps, evaluation batches, sampled positions) polls stop_requested()
// and winds down within about one unit of work. A second signal kills the process, so a
// stuck phase can still be ended.
#pragma once

#include <signal.h>

namespace spt {

// Installs the handlers for its lifetime and clears any earlier request; the previous
// handlers come back when it goes out of scope. One at a time per process.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool requested() const;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// True once SIGINT or SIGTERM arrived while a StopSignals was installed.
bool stop_requested();
// The exit status of a command that stopped on a signal (128 + SIGINT).
constexpr int kInterruptedExitCode = 130;

}  // namespace spt
