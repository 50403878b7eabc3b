// Division of non-negative ints by a divisor fixed for many divisions (a pattern's stride or
// summary width inside an attention kernel): the high word of x * ceil(2^32 / d) (2^32 - 1 for
// d = 1) is the quotient or one off it, and one comparison each way corrects it. A handful of
// instructions on the GPU instead of a general division's ~25.
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace spt {

struct Divisor {
  int d = 1;
  uint32_t m = 0xFFFFFFFFu;

  // A divisor below 1 (a width the caller never divides by) is taken as 1.
  SPT_HOST_DEVICE static Divisor of(int d) {
    d = d < 1 ? 1 : d;
    const uint32_t m = d == 1 ? 0xFFFFFFFFu : static_cast<uint32_t>(((uint64_t{1} << 32) + d - 1) / d);
    return {d, m};
  }
  // x / d for 0 <= x < 2^31.
  SPT_HOST_DEVICE int div(int x) const {
    int q = static_cast<int>((static_cast<uint64_t>(static_cast<uint32_t>(x)) * m) >> 32);
    const int r = x - q * d;
    if (r < 0) --q;
    if (r >= d) ++q;
    return q;
  }
  // x mod d for 0 <= x < 2^31.
  SPT_HOST_DEVICE int mod(int x) const { return x - div(x) * d; }
};

}  // namespace spt
