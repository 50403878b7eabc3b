// Elementwise math that the compiler can vectorize without -ffast-math (the C
// library's expf is a scalar call). Accurate to a few fp32 ulps.
#pragma once

#include <bit>
#include <cstdint>

namespace spt::cpu {

// exp(x) with Cody-Waite range reduction x = n ln2 + r, |r| <= ln2 / 2, and the degree-7
// Taylor polynomial of exp(r) (truncation error below 1e-8 relative). Inputs are
// clamped to [-87.3, 88], the range where 2^n stays a normal float; NaN stays NaN.
inline float exp_vectorizable(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;           // few mantissa bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;        // ln 2 - kLn2Hi
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.0f ? 88.0f : x;
  // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer (floorf would not
  // vectorize without -fno-trapping-math).
  constexpr float kRound = 12582912.0f;
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = std::bit_cast<float>(static_cast<int32_t>((static_cast<int32_t>(n) + 127) << 23));
  return p * scale;
}

}  // namespace spt::cpu
