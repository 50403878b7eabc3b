// Shared by the CUDA op tests (test_cuda_ops.cpp, test_cuda_optimizer.cpp): random inputs,
// a device array surrounded by sentinels, and the per-tensor comparison with the CPU.
//
// Tolerances. Every element gets an fp32 error bound `delta` derived from the op: u =
// 2^-24 times the magnitudes of the terms that both sides round (a few units for an
// exp, one per rounding), and for sums of n terms in fp64 2^-53 n times the sum of the
// magnitudes. A result stored as bf16 or fp16 is compared with the CPU result on the same
// (rounded) inputs: if the GPU's fp32 value is within delta of the CPU's, rounding it can
// move it at most r + 2 delta away, r being the error of rounding the CPU's value to the
// type, so 2 r + 2 delta is allowed. Ops whose fp32 arithmetic is the CPU's operation for
// operation (embedding forward, dropout, scale, conversion) must match exactly.
// Every output is followed by a guard filled with a NaN sentinel that must survive, and
// every op runs twice and must give the same bits.
#pragma once

#ifdef SPT_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/dtype.h"
#include "test_support.h"

namespace spt::cuda_ops_test {

using cuda::DType;
using namespace ::spt::testing_support;

constexpr double kU = kUnitRoundoff;                 // fp32 unit roundoff
constexpr double kU64 = 1.0 / 9007199254740992.0;  // fp64 unit roundoff, 2^-53
constexpr DType kTypes[] = {DType::f32, DType::bf16, DType::f16};

inline uint64_t next_seed() {
  static uint64_t seed = 7000;
  return ++seed;
}
// n standard normals times `scale` plus `shift`, rounded to dtype (never all zeros).
inline std::vector<float> random_values(size_t n, DType dtype, double scale = 1.0, double shift = 0.0) {
  const uint64_t key = rng_key(next_seed(), 0x6F7073ULL);
  std::vector<float> x(n);
  for (size_t e = 0; e < n; ++e) x[e] = round_to(dtype, static_cast<float>(shift + scale * normal01(key, e)));
  return x;
}

// A device array of `count` elements of `dtype` that starts `offset` elements into its
// allocation (offset 1 defeats the vector loads) and is followed by kGuard elements;
// everything outside [offset, offset + count) holds the sentinel.
class DeviceArray {
 public:
  DeviceArray(DType dtype, size_t count, size_t offset = 0)
      : dtype_(dtype), count_(count), offset_(offset), bytes_((offset + count + kGuard) * size()) {
    fill_sentinel();
  }
  size_t size() const { return cuda::dtype_size(dtype_); }
  void* data() { return bytes_.data() + offset_ * size(); }
  float* floats() { return reinterpret_cast<float*>(data()); }

  void fill_sentinel() {
    std::vector<unsigned char> raw(bytes_.size());
    for (size_t e = 0; e < offset_ + count_ + kGuard; ++e) put_sentinel(raw, e);
    bytes_.upload(raw.data(), raw.size());
  }
  void upload(const std::vector<float>& values) {
    std::vector<unsigned char> raw(bytes_.size());
    for (size_t e = 0; e < offset_ + count_ + kGuard; ++e) put_sentinel(raw, e);
    for (size_t e = 0; e < count_; ++e) {
      if (dtype_ == DType::f32) {
        std::memcpy(raw.data() + (offset_ + e) * 4, &values[e], 4);
      } else {
        const uint16_t bits = half_bits(dtype_, values[e]);
        std::memcpy(raw.data() + (offset_ + e) * 2, &bits, 2);
      }
    }
    bytes_.upload(raw.data(), raw.size());
  }

  struct Host {
    std::vector<float> values;       // [0, count)
    std::vector<unsigned char> raw;  // the whole allocation
    int touched = 0;                 // sentinel elements outside [offset, offset + count) that changed
  };
  Host download() const {
    Host host;
    host.raw.resize(bytes_.size());
    bytes_.download(host.raw.data(), host.raw.size());
    host.values.resize(count_);
    for (size_t e = 0; e < count_; ++e) host.values[e] = value_at(host.raw, offset_ + e);
    for (size_t e = 0; e < offset_ + count_ + kGuard; ++e)
      if ((e < offset_ || e >= offset_ + count_) && !is_sentinel(host.raw, e)) ++host.touched;
    return host;
  }

 private:
  void put_sentinel(std::vector<unsigned char>& raw, size_t e) const {
    if (dtype_ == DType::f32)
      std::memcpy(raw.data() + e * 4, &kSentinelF32, 4);
    else
      std::memcpy(raw.data() + e * 2, dtype_ == DType::bf16 ? &kSentinelBF16 : &kSentinelF16, 2);
  }
  bool is_sentinel(const std::vector<unsigned char>& raw, size_t e) const {
    if (dtype_ == DType::f32) return std::memcmp(raw.data() + e * 4, &kSentinelF32, 4) == 0;
    return std::memcmp(raw.data() + e * 2, dtype_ == DType::bf16 ? &kSentinelBF16 : &kSentinelF16, 2) == 0;
  }
  float value_at(const std::vector<unsigned char>& raw, size_t e) const {
    if (dtype_ == DType::f32) {
      float x;
      std::memcpy(&x, raw.data() + e * 4, 4);
      return x;
    }
    uint16_t bits;
    std::memcpy(&bits, raw.data() + e * 2, 2);
    return half_value(dtype_, bits);
  }

  DType dtype_;
  size_t count_, offset_;
  DeviceBuffer<unsigned char> bytes_;
};

// Per-tensor comparison: |got - want| <= delta (fp32 outputs) or 2 r + 2 delta (rounded
// outputs); reports the element with the largest error relative to its allowance.
class Check {
 public:
  Check(std::string what, DType out_dtype) : what_(std::move(what)), dtype_(out_dtype) {}
  void add(size_t e, float got, float want, double delta) {
    if (!std::isfinite(got)) {
      if (got == round_to(dtype_, want)) return;  // an overflow to infinity that the type demands
      if (nonfinite_++ == 0) first_nonfinite_ = e;
      return;
    }
    const double r = std::fabs(static_cast<double>(round_to(dtype_, want)) - want);
    const double allowed = dtype_ == DType::f32 ? delta : 2.0 * r + 2.0 * delta;
    const double err = std::fabs(static_cast<double>(got) - want);
    max_err_ = std::max(max_err_, err);
    const double excess = err - allowed;
    if (excess > 0 && (failures_++ == 0 || excess > worst_excess_)) {
      worst_excess_ = excess;
      worst_ = {e, got, want, allowed};
    }
  }
  void expect(const std::string& context) const {
    EXPECT_EQ(nonfinite_, 0) << what_ << " (" << context << "): " << nonfinite_ << " non-finite values, first at "
                             << first_nonfinite_;
    EXPECT_EQ(failures_, 0) << what_ << " (" << context << ", " << cuda::dtype_name(dtype_) << "): " << failures_
                            << " elements out of tolerance; max error " << max_err_ << "; worst at element "
                            << worst_.e << ": got " << worst_.got << ", want " << worst_.want << ", allowed "
                            << worst_.allowed;
  }

 private:
  struct Worst {
    size_t e = 0;
    double got = 0, want = 0, allowed = 0;
  };
  std::string what_;
  DType dtype_;
  double max_err_ = 0, worst_excess_ = 0;
  int failures_ = 0, nonfinite_ = 0;
  size_t first_nonfinite_ = 0;
  Worst worst_;
};

// Compares a downloaded output with the CPU's, checks its guard and returns the bytes.
template <typename Delta>
inline void compare(const std::string& what, const std::string& context, DType dtype, const DeviceArray::Host& got,
             const std::vector<float>& want, Delta delta) {
  Check check(what, dtype);
  for (size_t e = 0; e < want.size(); ++e) check.add(e, got.values[e], want[e], delta(e));
  check.expect(context);
  EXPECT_EQ(got.touched, 0) << what << " (" << context << "): " << got.touched << " guard elements were written";
}

// The output must be the CPU's fp32 result rounded to the output type, bit for bit.
inline void compare_exact(const std::string& what, const std::string& context, DType dtype, const DeviceArray::Host& got,
                   const std::vector<float>& want) {
  size_t mismatches = 0, first = 0;
  for (size_t e = 0; e < want.size(); ++e) {
    const float expected = round_to(dtype, want[e]);
    if (std::memcmp(&got.values[e], &expected, 4) != 0 && mismatches++ == 0) first = e;
  }
  EXPECT_EQ(mismatches, 0u) << what << " (" << context << ", " << cuda::dtype_name(dtype) << "): " << mismatches
                            << " elements differ from the CPU's; first at " << first << ": got "
                            << (want.empty() ? 0.0f : got.values[first]) << ", want "
                            << (want.empty() ? 0.0f : round_to(dtype, want[first]));
  EXPECT_EQ(got.touched, 0) << what << " (" << context << "): " << got.touched << " guard elements were written";
}

inline void expect_same_bits(const DeviceArray::Host& a, const DeviceArray::Host& b, const std::string& what,
                      const std::string& context) {
  EXPECT_TRUE(a.raw == b.raw) << what << " (" << context << "): two runs on the same input differ";
}

inline void sync() { SPT_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace spt::cuda_ops_test

#endif  // SPT_HAVE_CUDA
