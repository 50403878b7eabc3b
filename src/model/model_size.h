// What a model config costs before anything is allocated: its parameter count and the
// host memory the CPU model, its optimizer and one batch's activations take. Computed
// in double, so any config (even one of 2^31 layers) gets an answer to refuse it by.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"

namespace spt {

// Floats in the model's parameter buffer: ParamTable's total, 16-float alignment included.
double parameter_count(const ModelConfig& config);

// Host memory of the CPU model, in bytes (what the trainer prints once it runs).
struct HostMemoryPlan {
  double weights = 0;      // fp32 parameters
  double gradients = 0;    // fp32, same layout
  double optimizer = 0;    // AdamW's two fp32 moments (training only)
  double activations = 0;  // Model buffers for one batch (see Model::ensure_batch)
  double total() const { return weights + gradients + optimizer + activations; }
  std::string describe() const;  // "weights 1.8 MiB, gradients ..., total ..."
};

// The plan for batch B; `training` adds the optimizer and the backward buffers, and
// without `recompute` every layer keeps its activations.
HostMemoryPlan host_memory_plan(const ModelConfig& config, int B, bool training, bool recompute);

// Throws spt::Error when `plan` exceeds `limit_bytes` (memory_limit_bytes, see
// io/input_file.h), naming the plan, the limit, `what` and the flags that shrink it.
void check_memory_plan(const HostMemoryPlan& plan, double limit_bytes, const std::string& what);

std::string format_bytes(double bytes);  // "512 B", "3.2 MiB", "1.5 GiB"

}  // namespace spt
