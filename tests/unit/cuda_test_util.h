// Helpers of the CUDA tests: the guard that skips a test without a device, and a device
// array of fp32, bf16 or fp16 elements uploaded from and read back as floats, with a NaN
// sentinel to prove that elements were (not) written. The rounding and the sentinels are
// test_support.h's.
#pragma once

#ifdef SPT_HAVE_CUDA

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cuda_check.h"
#include "ops/dtype.h"
#include "test_support.h"

// Skips a test that needs a CUDA device on a machine without one (a CUDA build on a CPU
// machine runs every test binary; GPU tests skip there).
#define SPT_REQUIRE_CUDA_DEVICE() \
  if (!::spt::cuda_available()) GTEST_SKIP() << "no CUDA device: this test needs a GPU"

namespace spt::cuda_test {

using cuda::DType;
// The rounding, sentinels and guard length every parity test shares.
using namespace ::spt::testing_support;

inline const char* name(DType dtype) { return dtype == DType::bf16 ? "bf16" : dtype == DType::f16 ? "f16" : "f32"; }

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
