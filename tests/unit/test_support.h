// Helpers the unit tests share: the message of an expected spt::Error, whole-file reads,
// running the built `spt` binary with its output captured, and the numbers of the CUDA
// parity tests (bf16/fp16 rounding written independently of CUDA's conversions, unit
// roundoffs, and the NaN sentinels and guard length that prove which elements a kernel
// wrote). Everything here builds without CUDA, so the CPU tests check the rounding too.
#pragma once

#include <sys/wait.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "model/config.h"
#include "ops/dtype.h"

namespace spt::testing_support {

// The message of the spt::Error that `f` throws; "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Expects `fn` to throw an spt::Error whose one-line message contains every piece.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string text = e.what();
    EXPECT_EQ(text.find('\n'), std::string::npos) << "message spans lines: " << text;
    for (const std::string& piece : pieces) EXPECT_NE(text.find(piece), std::string::npos) << "'" << piece << "' not in: " << text;
    return;
  }
  ADD_FAILURE() << "no spt::Error thrown";
}

// A 2-layer strided model of width `width` over 16 positions (a 4 x 4 position table):
// every tensor small, every code path of a step taken.
inline ModelConfig small_strided_config(int width = 16) {
  ModelConfig c;
  c.layers = 2;
  c.width = width;
  c.heads = 2;
  c.ctx = 16;
  c.pattern = "strided";
  c.stride = 4;
  c.pos_sizes = {4, 4};
  return c;
}

// `count` tokens drawn uniformly from the vocabulary, the same for the same seed.
inline std::vector<uint8_t> random_tokens(size_t count, uint64_t seed) {
  std::vector<uint8_t> tokens(count);
  for (size_t i = 0; i < count; ++i) tokens[i] = static_cast<uint8_t>(uniform_int(seed, i, 256));
  return tokens;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct CliResult {
  int code = -1;  // exit status; -1 when killed by a signal
  std::string out, err;
};

// Runs `spt ARGS` through the shell in `cwd` after the shell commands `setup`, under a 60 s
// timeout; stdout and stderr go through files in `scratch` (a test's temporary directory).
inline CliResult run_spt(const std::string& scratch, const std::string& args, const std::string& setup = "true",
                         const std::string& cwd = "") {
  const std::string out = scratch + "/stdout.txt", err = scratch + "/stderr.txt";
  const std::string command = "cd '" + (cwd.empty() ? scratch : cwd) + "' && " + setup + " && timeout 60 " +
                              std::string(SPT_BINARY) + " " + args + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

using cuda::DType;

constexpr double kUnitRoundoff = 1.0 / (1 << 24);  // fp32
inline double unit_roundoff(DType dtype) {
  return dtype == DType::bf16 ? 1.0 / 256 : dtype == DType::f16 ? 1.0 / 2048 : kUnitRoundoff;
}

// Elements after every output buffer that must keep their sentinel.
constexpr size_t kGuard = 256;
// NaNs that no arithmetic or conversion produces (fp16's is signalling; fp32's and bf16's
// carry payloads that canonical NaNs lack), so a sentinel read back was never written.
constexpr uint32_t kSentinelF32 = 0x7FC0DEADu;
constexpr uint16_t kSentinelBF16 = 0x7FDEu;
constexpr uint16_t kSentinelF16 = 0x7DADu;

// Round to nearest even bf16, as bits.
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
  const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t magnitude = u & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;  // 65520 and up round to infinity
  if (magnitude < 0x38800000u)                          // below 2^-14: subnormal steps of 2^-24
    return sign | static_cast<uint16_t>(std::nearbyint(std::fabs(static_cast<double>(x)) * 16777216.0));
  uint32_t half = ((magnitude >> 23) - 112) << 10 | ((magnitude >> 13) & 0x3FFu);
  const uint32_t rest = magnitude & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // a carry moves into the exponent
  return sign | static_cast<uint16_t>(half);
}
inline float f16_value(uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1F;
  const int mantissa = bits & 0x3FF;
  double value;
  if (exponent == 0)
    value = std::ldexp(mantissa, -24);
  else if (exponent == 31)
    value = mantissa == 0 ? INFINITY : NAN;
  else
    value = std::ldexp(1024 + mantissa, exponent - 25);
  return static_cast<float>((bits & 0x8000) ? -value : value);
}
// The 2-byte types (bf16, f16) by their DType.
inline uint16_t half_bits(DType dtype, float x) { return dtype == DType::bf16 ? bf16_bits(x) : f16_bits(x); }
inline float half_value(DType dtype, uint16_t bits) { return dtype == DType::bf16 ? bf16_value(bits) : f16_value(bits); }
inline uint16_t half_sentinel(DType dtype) { return dtype == DType::bf16 ? kSentinelBF16 : kSentinelF16; }
inline float round_to(DType dtype, float x) { return dtype == DType::f32 ? x : half_value(dtype, half_bits(dtype, x)); }

}  // namespace spt::testing_support
