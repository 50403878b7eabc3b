// The bf16/fp16 rounding of test_support.h, which the CUDA parity tests trust to be
// independent of CUDA's conversions, against the compiler's _Float16 and against
// hand-checked bf16 cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/rng.h"
#include "test_support.h"

namespace spt {
namespace {

using namespace testing_support;

uint16_t compiler_f16_bits(float x) {
  const _Float16 h = static_cast<_Float16>(x);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

float from_bits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

TEST(TestSupport, Fp16RoundingMatchesTheCompilerOnEveryHalfAndEveryTie) {
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const uint16_t h = static_cast<uint16_t>(bits);
    const float x = f16_value(h);
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(f16_value(f16_bits(x))));
      continue;
    }
    _Float16 compiler;
    std::memcpy(&compiler, &h, 2);
    ASSERT_EQ(x, static_cast<float>(compiler)) << std::hex << bits;
    ASSERT_EQ(f16_bits(x), compiler_f16_bits(x)) << std::hex << bits;
    // Halfway to the next half up (a tie) and just either side of it.
    if ((h & 0x7FFFu) < 0x7BFFu) {
      const float next = f16_value(static_cast<uint16_t>(h + 1));
      const float tie = (x + next) / 2;
      for (const float y : {tie, std::nextafter(tie, 0.0f), std::nextafter(tie, 2 * next)})
        ASSERT_EQ(f16_bits(y), compiler_f16_bits(y)) << std::hex << bits << " " << y;
    }
  }
}

TEST(TestSupport, Fp16RoundingMatchesTheCompilerOnRandomFloats) {
  const uint64_t key = rng_key(11, 0x66313673ULL);
  for (uint64_t i = 0; i < 200000; ++i) {
    const uint32_t bits = static_cast<uint32_t>(uniform_int(key, i, uint64_t{1} << 32));
    const float x = from_bits(bits);
    if (std::isnan(x)) continue;
    ASSERT_EQ(f16_bits(x), compiler_f16_bits(x)) << std::hex << bits;
  }
}

TEST(TestSupport, Bf16RoundsToNearestEven) {
  EXPECT_EQ(bf16_bits(1.0f), 0x3F80u);
  EXPECT_EQ(bf16_bits(from_bits(0x3F808000u)), 0x3F80u);  // tie, even below
  EXPECT_EQ(bf16_bits(from_bits(0x3F818000u)), 0x3F82u);  // tie, even above
  EXPECT_EQ(bf16_bits(from_bits(0x3F808001u)), 0x3F81u);
  EXPECT_EQ(bf16_bits(from_bits(0x7F7FFFFFu)), 0x7F80u);  // the largest float rounds to infinity
  EXPECT_TRUE(std::isnan(bf16_value(bf16_bits(NAN))));
  EXPECT_EQ(bf16_value(0xC040u), -3.0f);
  EXPECT_EQ(round_to(DType::bf16, 1.00390625f), 1.0f);
  EXPECT_EQ(round_to(DType::f16, 1.00048828125f), 1.0f);
  EXPECT_EQ(round_to(DType::f32, 1.00048828125f), 1.00048828125f);
}

TEST(TestSupport, SentinelsAreNansNoConversionProduces) {
  EXPECT_TRUE(std::isnan(from_bits(kSentinelF32)));
  EXPECT_TRUE(std::isnan(bf16_value(kSentinelBF16)));
  EXPECT_TRUE(std::isnan(f16_value(kSentinelF16)));
  EXPECT_EQ(kSentinelF16 & 0x0200u, 0u) << "the fp16 sentinel must be a signalling NaN";
  EXPECT_NE(f16_bits(f16_value(kSentinelF16)), kSentinelF16);
  EXPECT_NE(bf16_bits(bf16_value(kSentinelBF16)), kSentinelBF16);
}

}  // namespace
}  // namespace spt
