// The training loop: batches, forward/backward with accumulation, clipping, AdamW,
// periodic validation, metrics, checkpoints, Ctrl-C and NaN handling, resume.
#pragma once

#include <string>

#include "dist/communicator.h"
#include "model/config.h"

namespace spt {

struct TrainRun {
  ModelConfig model;
  TrainConfig train;
  std::string data_format;  // bytes | idx | cifar10
  std::string data_path;
  std::string out_dir;      // holds checkpoint/ (the latest), best/ (the best validation), metrics.jsonl,
                            // config.json, loss.png
  bool resume = false;      // continue from out_dir/checkpoint: model and train come from it, except that
                            // train.steps > 0 replaces its step count (0 keeps it)
  int64_t resume_patience = -1;  // with resume, >= 0 replaces the checkpoint's train.patience
  int eval_batch = 8;       // windows per evaluation forward pass
  int log_every = 0;        // 0: automatic
  std::string device = "cpu";  // cpu | cuda
  std::string precision;       // fp32 | bf16 | fp16 (empty: the device's default)
  int64_t stop_at = 0;      // > 0: save and stop once this many steps are done (resume later)
  double time_limit = 0;    // > 0: save and stop once the steps of this run took this many seconds
  bool deterministic = false;  // cuda: bit-for-bit repeatable steps (EngineOptions::deterministic)
  int resume_batch = 0;     // resume: > 0 replaces the checkpoint's batch (a run resumed on another
                            // number of ranks keeps its global batch, ranks x batch, this way)
};

// Returns the process exit code: 0 done (or stopped by stop_at, time_limit or
// train.patience), 1 stopped on a non-finite loss, 130 interrupted.
int run_training(TrainRun run);
// The same as one rank of a data-parallel job (train/data_parallel.h): every rank calls
// it with its communicator; the global batch is world x batch x accumulate windows, rank
// 0 alone writes and prints, and every rank returns the same code.
int run_training(TrainRun run, dist::Communicator& comm);

}  // namespace spt
