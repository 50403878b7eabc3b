#include "data/mulaw.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace spt {
namespace {

// The 256 decoded centres, computed once: decoding is a table look-up.
const std::array<float, 256>& decode_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int code = 0; code < 256; ++code) {
      const double y = (code + 0.5) / 128.0 - 1.0;
      const double x = (std::pow(1.0 + kMuLaw, std::fabs(y)) - 1.0) / kMuLaw;
      t[static_cast<size_t>(code)] = static_cast<float>(y < 0 ? -x : x);
    }
    return t;
  }();
  return table;
}

}  // namespace

uint8_t mulaw_encode(float sample) {
  const double x = std::isnan(sample) ? 0.0 : std::clamp(static_cast<double>(sample), -1.0, 1.0);
  const double magnitude = std::log1p(kMuLaw * std::fabs(x)) / std::log1p(kMuLaw);
  const double y = x < 0 ? -magnitude : magnitude;
  const double code = std::floor((y + 1.0) * 128.0);
  return static_cast<uint8_t>(std::clamp(code, 0.0, 255.0));
}

float mulaw_decode(uint8_t code) { return decode_table()[code]; }

std::vector<uint8_t> mulaw_encode(const std::vector<float>& samples) {
  std::vector<uint8_t> codes(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) codes[i] = mulaw_encode(samples[i]);
  return codes;
}

std::vector<float> mulaw_decode(const std::vector<uint8_t>& codes) {
  std::vector<float> samples(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) samples[i] = mulaw_decode(codes[i]);
  return samples;
}

}  // namespace spt
