// Helpers of the CUDA attention tests: bf16 / fp16 rounding written independently of
// CUDA's conversions, and a device array of fp32, bf16 or fp16 elements uploaded from and
// read back as floats, with a NaN sentinel to prove that elements were (not) written.
#pragma once

#ifdef SPT_HAVE_CUDA

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/cuda_check.h"
#include "ops/dtype.h"

// Skips a test that needs a CUDA device on a machine without one (a CUDA build on a CPU
// machine runs every test binary; GPU tests skip there).
#define SPT_REQUIRE_CUDA_DEVICE() \
  if (!::spt::cuda_available()) GTEST_SKIP() << "no CUDA device: this test needs a GPU"

namespace spt::cuda_test {

using cuda::DType;

constexpr double kUnitRoundoff = 1.0 / (1 << 24);  // fp32
constexpr size_t kGuard = 256;                     // elements after every output buffer
constexpr uint32_t kSentinelF32 = 0x7FC0DEADu;     // a NaN no kernel produces by arithmetic
constexpr uint16_t kSentinelBF16 = 0x7FDEu;
constexpr uint16_t kSentinelF16 = 0x7DEAu;  // a NaN no kernel produces by arithmetic

// Round to nearest even bf16, as bits, independent of CUDA's conversion.
inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_value(uint16_t bits) {
  const uint32_t u = uint32_t{bits} << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
// Round to nearest even IEEE half, as bits (subnormals and overflow to infinity included).
inline uint16_t f16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const float a = std::fabs(x);
  if (std::isnan(x)) return 0x7E00;
  if (a >= 65520.0f) return sign | 0x7C00u;  // rounds past the largest half, 65504
  if (a < 0.00006103515625f) {                // below 2^-14: a multiple of 2^-24
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));
  }
  uint32_t ua;
  std::memcpy(&ua, &a, 4);
  const uint32_t exponent = (ua >> 23) - 127 + 15, mantissa = ua & 0x7FFFFFu;
  uint32_t h = (exponent << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
  return sign | static_cast<uint16_t>(h);
}
inline float f16_value(uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1F, mantissa = bits & 0x3FF;
  float x;
  if (exponent == 0)
    x = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31)
    x = mantissa == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  else
    x = std::ldexp(static_cast<float>(1024 + mantissa), exponent - 25);
  return (bits & 0x8000u) ? -x : x;
}
inline float round_to(DType dtype, float x) {
  if (dtype == DType::bf16) return bf16_value(bf16_bits(x));
  if (dtype == DType::f16) return f16_value(f16_bits(x));
  return x;
}
inline const char* name(DType dtype) { return dtype == DType::bf16 ? "bf16" : dtype == DType::f16 ? "f16" : "f32"; }
inline uint16_t half_bits(DType dtype, float x) { return dtype == DType::bf16 ? bf16_bits(x) : f16_bits(x); }
inline float half_value(DType dtype, uint16_t bits) { return dtype == DType::bf16 ? bf16_value(bits) : f16_value(bits); }
inline uint16_t half_sentinel(DType dtype) { return dtype == DType::bf16 ? kSentinelBF16 : kSentinelF16; }

// A device array of `count` elements of `dtype`, uploaded from and read back as floats.
class DeviceArray {
 public:
  DeviceArray(DType dtype, size_t count) : dtype_(dtype), count_(count), bytes_(count * element_size()) {}
  size_t element_size() const { return dtype_ == DType::f32 ? 4 : 2; }
  void* data() { return bytes_.data(); }
  float* floats() { return reinterpret_cast<float*>(bytes_.data()); }

  void upload(const std::vector<float>& values) {
    std::vector<unsigned char> raw(count_ * element_size());
    for (size_t e = 0; e < count_; ++e) {
      if (dtype_ == DType::f32) {
        std::memcpy(raw.data() + 4 * e, &values[e], 4);
      } else {
        const uint16_t bits = half_bits(dtype_, values[e]);
        std::memcpy(raw.data() + 2 * e, &bits, 2);
      }
    }
    bytes_.upload(raw.data(), raw.size());
  }
  void fill_sentinel() {
    std::vector<unsigned char> raw(count_ * element_size());
    for (size_t e = 0; e < count_; ++e) {
      if (dtype_ == DType::f32)
        std::memcpy(raw.data() + 4 * e, &kSentinelF32, 4);
      else {
        const uint16_t bits = half_sentinel(dtype_);
        std::memcpy(raw.data() + 2 * e, &bits, 2);
      }
    }
    bytes_.upload(raw.data(), raw.size());
  }
  struct Host {
    DType dtype;
    std::vector<unsigned char> raw;
    float value(size_t e) const {
      if (dtype != DType::f32) {
        uint16_t bits;
        std::memcpy(&bits, raw.data() + 2 * e, 2);
        return half_value(dtype, bits);
      }
      float x;
      std::memcpy(&x, raw.data() + 4 * e, 4);
      return x;
    }
    bool is_sentinel(size_t e) const {
      if (dtype != DType::f32) {
        uint16_t bits;
        std::memcpy(&bits, raw.data() + 2 * e, 2);
        return bits == half_sentinel(dtype);
      }
      uint32_t bits;
      std::memcpy(&bits, raw.data() + 4 * e, 4);
      return bits == kSentinelF32;
    }
  };
  Host download() const {
    Host host{dtype_, std::vector<unsigned char>(count_ * element_size())};
    bytes_.download(host.raw.data(), host.raw.size());
    return host;
  }

 private:
  DType dtype_;
  size_t count_;
  DeviceBuffer<unsigned char> bytes_;
};

}  // namespace spt::cuda_test

#endif
