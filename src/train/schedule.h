// Learning-rate schedule: linear warmup over `warmup` steps, then cosine decay to zero
// at `steps` (the paper's schedule).
#pragma once

#include <cmath>
#include <cstdint>

namespace spt {

inline double learning_rate(double peak, int64_t step /*0-based*/, int64_t warmup, int64_t steps) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t decay_steps = steps - warmup;
  if (decay_steps <= 0) return peak;
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(decay_steps));
  return peak * 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
}

}  // namespace spt
