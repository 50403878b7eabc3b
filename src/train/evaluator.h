// Bits per byte (or per dim) of a model over a split (or its first windows), each token
// scored once; interruptible between batches.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/dataset.h"
#include "model/model.h"
#include "train/engine.h"

namespace spt {

struct EvalResult {
  double bits_per_dim = 0;  // mean over scored tokens of -log2 p(token)
  double nats = 0;          // same in nats
  int64_t tokens = 0;       // tokens scored
  int64_t windows = 0;      // context windows evaluated
  int64_t split_windows = 0;  // windows in the whole split (more than `windows` when bounded)
  int64_t skipped_tokens = 0;  // tokens of clips shorter than T, not scored (data/dataset.h)
  double seconds = 0;
  bool interrupted = false;   // stopped early by EvalHooks::should_stop: the numbers cover a part only
};

// Optional callbacks between batches: a long evaluation shows progress and stops on request.
struct EvalHooks {
  std::function<bool()> should_stop;                                // true: stop before the next batch
  std::function<void(int64_t windows_done, int64_t windows_total)> on_batch;  // after every batch
  // Data parallelism: each rank scores a contiguous share of the windows and the results
  // are summed over the ranks (every rank returns the same result; a stop asked on any
  // rank stops all). Null: this process scores every window.
  dist::Communicator* ranks = nullptr;
};

// max_windows = 0 evaluates the whole split; otherwise the first max_windows windows.
// T is the model's context.
EvalResult evaluate_split(Engine& engine, int64_t T, const TokenSplit& split, int batch, int64_t max_windows,
                          const EvalHooks& hooks = {});
// The same on the CPU.
EvalResult evaluate_split(Model& model, const TokenSplit& split, int batch, int64_t max_windows,
                          const EvalHooks& hooks = {});

// evaluate_split with a progress line labelled `label` on a terminal (stderr), stopping
// before the next batch once should_stop() is true.
EvalResult evaluate_with_progress(const std::string& label, Engine& engine, int64_t T, const TokenSplit& split,
                                  int batch, int64_t max_windows, const std::function<bool()>& should_stop,
                                  dist::Communicator* ranks = nullptr);

// "over N tokens (K of M windows; <flag> 0 for all) (4s)": what a bounded pass covered and how to get
// the whole split.
std::string describe_coverage(const EvalResult& r, const std::string& bound_flag);

}  // namespace spt
