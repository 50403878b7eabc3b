// Divisor (src/core/divisor.h): the multiply-high division the attention kernels use for
// strides and summary widths, checked against / and % over edge cases and random values.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/divisor.h"

namespace spt {
namespace {

TEST(Divisor, MatchesIntegerDivisionOnEdgesAndRandomValues) {
  const std::vector<int> divisors = {1, 2, 3, 7, 16, 32, 48, 96, 127, 128, 1000, 4093, 65537, (1 << 20) + 3,
                                     (1 << 30) + 1, 2147483647};
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> any(0, 2147483647);
  for (const int d : divisors) {
    const Divisor by = Divisor::of(d);
    std::vector<int> xs = {0, 1, d - 1, d, d + 1, 2147483647, 2147483646, 2147483647 - d};
    for (int k = 1; k < 64; ++k) {
      const int64_t x = int64_t{d} * k - 1;
      if (x <= 2147483647) xs.push_back(static_cast<int>(x));
    }
    for (int i = 0; i < 20000; ++i) xs.push_back(any(gen));
    for (const int x : xs) {
      if (x < 0) continue;
      ASSERT_EQ(by.div(x), x / d) << "x = " << x << ", d = " << d;
      ASSERT_EQ(by.mod(x), x % d) << "x = " << x << ", d = " << d;
    }
  }
}

TEST(Divisor, NonPositiveDivisorIsOne) {
  EXPECT_EQ(Divisor::of(0).div(12345), 12345);
  EXPECT_EQ(Divisor::of(-3).mod(12345), 0);
}

}  // namespace
}  // namespace spt
