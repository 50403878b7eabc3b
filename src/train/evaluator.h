// Bits per byte (or per dim) of a model over a whole split, each token scored once.
#pragma once

#include <cstdint>

#include "data/dataset.h"
#include "model/model.h"
#include "train/engine.h"

namespace spt {

struct EvalResult {
  double bits_per_dim = 0;  // mean over scored tokens of -log2 p(token)
  double nats = 0;          // same in nats
  int64_t tokens = 0;       // tokens scored
  int64_t windows = 0;      // context windows evaluated
  int64_t skipped_tokens = 0;  // tokens of clips shorter than T, not scored (data/dataset.h)
  double seconds = 0;
};

// max_windows = 0 evaluates the whole split; otherwise the first max_windows windows.
// T is the model's context.
EvalResult evaluate_split(Engine& engine, int64_t T, const TokenSplit& split, int batch, int64_t max_windows);
// The same on the CPU.
EvalResult evaluate_split(Model& model, const TokenSplit& split, int batch, int64_t max_windows);

}  // namespace spt
