// AdamW on the model's fp32 weights with fp32 moment estimates. Weight decay applies
// to the matrices of the linear layers (qkv, proj, fc1, fc2, head), not to
// embeddings, biases or LayerNorm gains (ParamInfo::decay).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/model.h"

namespace spt {

struct OptimizerState {
  // The AdamW moments of the flattened parameters [moments_begin, moments_end()): all of
  // them (the layout of Model::weights()) except on a data-parallel rank, which keeps its
  // shard (dist::shard_range) and gathers them whole only for a checkpoint.
  std::vector<float> exp_avg;     // (moments_end() - moments_begin)
  std::vector<float> exp_avg_sq;  // (moments_end() - moments_begin)
  int64_t moments_begin = 0;
  int64_t step = 0;               // optimizer steps taken (bias correction)
  // The exponential moving average of the weights (TrainConfig::ema), same layout as
  // Model::weights(); empty when the run keeps none.
  std::vector<float> ema;
  explicit OptimizerState(int64_t size = 0, int64_t begin = 0)
      : exp_avg(size, 0.0f), exp_avg_sq(size, 0.0f), moments_begin(begin) {}
  int64_t moments_end() const { return moments_begin + static_cast<int64_t>(exp_avg.size()); }
  int64_t moment_bytes() const { return static_cast<int64_t>((exp_avg.size() + exp_avg_sq.size()) * sizeof(float)); }
};

// Sum of squares of x (n) in fp64 over fixed chunks added in order: the same bits for any
// thread count.
double sum_of_squares(const float* x, int64_t n);
// x (n) *= factor.
void scale_values(float* x, int64_t n, float factor);

// Global L2 norm of the gradients (fp64, deterministic).
double gradient_norm(const Model& model, const std::vector<float>& grads);

// Scales gradients so their global norm is at most max_norm (no-op when max_norm <= 0).
// Returns the norm before clipping.
double clip_gradients(Model& model, double max_norm);

void optimizer_step(Model& model, OptimizerState& state, const TrainConfig& config, double lr);
// The same step on the flattened parameters [begin, end) only (a data-parallel rank's
// shard), which the state's moments must cover: their weights and moments change, the
// rest stays; state.step advances.
void optimizer_step(Model& model, OptimizerState& state, const TrainConfig& config, double lr, int64_t begin,
                    int64_t end);

// ema (n) = decay * ema + (1 - decay) * weights (n), element by element in fp64 as
// fma(decay, ema, (1 - decay) * w), stored in fp32 (the CUDA ema_update computes the same bits).
void ema_update(const std::vector<float>& weights, std::vector<float>& ema, double decay);

}  // namespace spt
