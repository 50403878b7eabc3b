// Synthesized recordings for the audio tests: tones and noise written as 16-bit WAVs by
// spt's own writer, and a few ways of damaging a file.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/wav.h"

namespace spt::testing_support {

inline std::vector<float> sine(double hz, int rate, int64_t frames, double amplitude = 0.5) {
  std::vector<float> x(static_cast<size_t>(frames));
  for (int64_t i = 0; i < frames; ++i)
    x[static_cast<size_t>(i)] = static_cast<float>(amplitude * std::sin(2 * M_PI * hz * static_cast<double>(i) / rate));
  return x;
}

inline std::vector<float> noise(uint64_t seed, int64_t frames, double amplitude = 0.3) {
  std::vector<float> x(static_cast<size_t>(frames));
  for (int64_t i = 0; i < frames; ++i)
    x[static_cast<size_t>(i)] = static_cast<float>(amplitude * (2.0 * uniform01(seed, static_cast<uint64_t>(i)) - 1.0));
  return x;
}

// Sign changes between consecutive samples (two per period of a sine).
inline int zero_crossings(const std::vector<float>& x) {
  int n = 0;
  for (size_t i = 1; i < x.size(); ++i) n += (x[i - 1] < 0) != (x[i] < 0);
  return n;
}

}  // namespace spt::testing_support
