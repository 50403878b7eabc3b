#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace spt {
namespace {

// The gradient norm sums fixed chunks of this many floats, each in a fixed order, and
// adds the chunk sums in order: the result does not depend on the thread count.
constexpr int64_t kNormChunk = 1 << 16;

double chunk_sum_of_squares(const float* x, int64_t n) {  // x: (n)
  // Four interleaved accumulators in a fixed pattern: faster than one, still exact-order.
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += static_cast<double>(x[i]) * x[i];
    s1 += static_cast<double>(x[i + 1]) * x[i + 1];
    s2 += static_cast<double>(x[i + 2]) * x[i + 2];
    s3 += static_cast<double>(x[i + 3]) * x[i + 3];
  }
  for (; i < n; ++i) s0 += static_cast<double>(x[i]) * x[i];
  return (s0 + s1) + (s2 + s3);
}

// Calls fn(begin, end, decay) on the pieces of [begin, end) of the weight buffer, split
// at tensor boundaries; the alignment gaps between tensors count as not decayed.
template <typename Fn>
void for_each_piece(const ParamTable& table, int64_t begin, int64_t end, Fn&& fn) {
  const std::vector<ParamInfo>& params = table.all();
  // First tensor that ends after `begin` (tensors are stored in increasing offsets).
  auto it = std::upper_bound(params.begin(), params.end(), begin,
                             [](int64_t pos, const ParamInfo& p) { return pos < p.offset + p.size; });
  int64_t pos = begin;
  while (pos < end) {
    if (it == params.end()) {
      fn(pos, end, false);
      return;
    }
    if (pos < it->offset) {
      const int64_t gap_end = std::min(end, it->offset);
      fn(pos, gap_end, false);
      pos = gap_end;
      continue;
    }
    const int64_t piece_end = std::min(end, it->offset + it->size);
    fn(pos, piece_end, it->decay);
    pos = piece_end;
    ++it;
  }
}

}  // namespace

double sum_of_squares(const float* x, int64_t n) {
  const int64_t chunks = (n + kNormChunk - 1) / kNormChunk;
  std::vector<double> partial(chunks, 0.0);  // (chunks)
  parallel_for(chunks, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      const int64_t begin = c * kNormChunk;
      partial[c] = chunk_sum_of_squares(x + begin, std::min(kNormChunk, n - begin));
    }
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

void scale_values(float* x, int64_t n, float factor) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= factor;
  }, 1 << 14);
}

double gradient_norm(const Model& model, const std::vector<float>& grads) {
  const int64_t n = model.params().total();
  SPT_CHECK(static_cast<int64_t>(grads.size()) == n, "gradient buffer holds ", grads.size(),
            " floats but the model has ", n);
  return std::sqrt(sum_of_squares(grads.data(), n));
}

double clip_gradients(Model& model, double max_norm) {
  std::vector<float>& grads = model.grads();
  const double norm = gradient_norm(model, grads);
  if (max_norm <= 0.0 || !std::isfinite(norm) || norm <= max_norm) return norm;
  scale_values(grads.data(), static_cast<int64_t>(grads.size()), static_cast<float>(max_norm / norm));
  return norm;
}

void optimizer_step(Model& model, OptimizerState& state, const TrainConfig& config, double lr) {
  optimizer_step(model, state, config, lr, 0, model.params().total());
}

void optimizer_step(Model& model, OptimizerState& state, const TrainConfig& config, double lr, int64_t first_param,
                    int64_t end_param) {
  const int64_t n = model.params().total();
  SPT_CHECK(first_param >= 0 && first_param <= end_param && end_param <= n, "optimizer range [", first_param, ", ",
            end_param, ") lies outside the model's ", n, " parameters");
  SPT_CHECK(state.exp_avg.size() == state.exp_avg_sq.size() && state.moments_begin <= first_param &&
                end_param <= state.moments_end(),
            "optimizer state holds the moments of parameters [", state.moments_begin, ", ", state.moments_end(),
            ") (", state.exp_avg_sq.size(), " second moments) but the step updates [", first_param, ", ", end_param,
            ") of ", n, ": build it as OptimizerState(model.params().total()), or as the rank's shard");
  SPT_CHECK(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1, "AdamW betas (",
            config.beta1, ", ", config.beta2, ") must lie in [0, 1)");
  SPT_CHECK(config.eps > 0, "AdamW eps ", config.eps, " must be positive");
  state.step += 1;
  const double b1 = config.beta1, b2 = config.beta2, eps = config.eps;
  const double step_size = lr / (1.0 - std::pow(b1, static_cast<double>(state.step)));
  const double sqrt_correction2 = std::sqrt(1.0 - std::pow(b2, static_cast<double>(state.step)));
  const double decay_factor = 1.0 - lr * config.weight_decay;
  float* weights = model.weights().data();      // (n)
  const float* grads = model.grads().data();    // (n)
  float* exp_avg = state.exp_avg.data();        // (moments): parameter i is element i - base
  float* exp_avg_sq = state.exp_avg_sq.data();  // (moments)
  const int64_t base = state.moments_begin;
  // Element arithmetic in fp64, stored in fp32; each element is independent, so the
  // result does not depend on how the buffer is split across threads.
  parallel_for(end_param - first_param, [&](int64_t begin, int64_t end) {
    for_each_piece(model.params(), first_param + begin, first_param + end, [&](int64_t first, int64_t last, bool decay) {
      const double keep = decay ? decay_factor : 1.0;
      for (int64_t i = first; i < last; ++i) {
        const double g = grads[i];
        const double m = b1 * exp_avg[i - base] + (1.0 - b1) * g;
        const double v = b2 * exp_avg_sq[i - base] + (1.0 - b2) * g * g;
        exp_avg[i - base] = static_cast<float>(m);
        exp_avg_sq[i - base] = static_cast<float>(v);
        const double p = weights[i] * keep;
        weights[i] = static_cast<float>(p - step_size * m / (std::sqrt(v) / sqrt_correction2 + eps));
      }
    });
  }, 1 << 14);
}

void ema_update(const std::vector<float>& weights, std::vector<float>& ema, double decay) {
  SPT_CHECK(weights.size() == ema.size(), "weight average holds ", ema.size(), " floats but the model has ",
            weights.size());
  SPT_CHECK(decay >= 0 && decay < 1, "weight average decay ", decay, " must be in [0, 1) (--ema)");
  const double keep = decay, take = 1.0 - decay;
  float* average = ema.data();        // (n)
  const float* w = weights.data();    // (n)
  parallel_for(static_cast<int64_t>(ema.size()), [&](int64_t begin, int64_t end) {
    // An explicit fused multiply-add, so that no compiler choice of contraction changes
    // the bits: the device computes this same expression.
    for (int64_t i = begin; i < end; ++i) average[i] = static_cast<float>(std::fma(keep, average[i], take * w[i]));
  }, 1 << 14);
}

}  // namespace spt
