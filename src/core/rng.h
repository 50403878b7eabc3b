// Counter-based random numbers (Philox4x32-10): the value at (key, counter) is a pure
// function of both, so CPU and GPU produce the same stream, dropout masks can be
// regenerated in the backward pass, and a resumed run draws exactly what an
// uninterrupted one would.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/host_device.h"

// Functions marked SPT_HOST_DEVICE compile for the GPU too, so the device draws
// bit-for-bit the host's numbers.

namespace spt {

// The four 32-bit output words of one Philox block.
struct PhiloxWords {
  uint32_t word[4];
  SPT_HOST_DEVICE uint32_t operator[](size_t i) const { return word[i]; }
};

struct Philox {
  static constexpr uint32_t kMul0 = 0xD2511F53u;
  static constexpr uint32_t kMul1 = 0xCD9E8D57u;
  static constexpr uint32_t kWeyl0 = 0x9E3779B9u;
  static constexpr uint32_t kWeyl1 = 0xBB67AE85u;

  // Four 32-bit words for 128-bit counter `ctr` under 64-bit key `key`.
  static SPT_HOST_DEVICE PhiloxWords block(uint64_t key, uint64_t ctr_lo, uint64_t ctr_hi = 0) {
    uint32_t c0 = static_cast<uint32_t>(ctr_lo), c1 = static_cast<uint32_t>(ctr_lo >> 32);
    uint32_t c2 = static_cast<uint32_t>(ctr_hi), c3 = static_cast<uint32_t>(ctr_hi >> 32);
    uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
      const uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
      const uint32_t n1 = static_cast<uint32_t>(p1);
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
      const uint32_t n3 = static_cast<uint32_t>(p0);
      c0 = n0; c1 = n1; c2 = n2; c3 = n3;
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    return {{c0, c1, c2, c3}};
  }
};

// The SplitMix64 finalizer: a bijective scramble of one 64-bit word.
SPT_HOST_DEVICE inline uint64_t rng_mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Mixes several 64-bit identifiers (seed, step, layer, ...) into one Philox key.
SPT_HOST_DEVICE inline uint64_t rng_key(uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0) {
  return rng_mix(rng_mix(rng_mix(rng_mix(a) ^ b) ^ c) ^ d);
}

// Uniform float in [0, 1) with 24 random bits, for element `index` of stream `key`.
SPT_HOST_DEVICE inline float uniform01(uint64_t key, uint64_t index) {
  const auto words = Philox::block(key, index / 4);
  return static_cast<float>(words[index % 4] >> 8) * (1.0f / 16777216.0f);
}

// Standard normal for element `index` of stream `key` (Box-Muller on one Philox block).
inline float normal01(uint64_t key, uint64_t index) {
  const auto words = Philox::block(key, index / 2, 0x6E6F726DULL);
  const int lane = static_cast<int>(index % 2);
  const double u1 = (static_cast<double>(words[2 * lane] >> 8) + 1.0) / 16777217.0;
  const double u2 = static_cast<double>(words[2 * lane + 1] >> 8) / 16777216.0;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

// Uniform integer in [0, n) for element `index` of stream `key` (64 random bits).
inline uint64_t uniform_int(uint64_t key, uint64_t index, uint64_t n) {
  const auto words = Philox::block(key, index, 0x696E74ULL);
  const uint64_t bits = (static_cast<uint64_t>(words[0]) << 32) | words[1];
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * n) >> 64);
}

}  // namespace spt
