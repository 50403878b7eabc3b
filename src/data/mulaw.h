// 8-bit mu-law companding of audio samples (mu = 255), the token code of raw audio.
//
// A sample x in [-1, 1] (values outside are clamped; NaN counts as 0) is companded by
// the closed form
//     y = F(x) = sign(x) * ln(1 + mu |x|) / ln(1 + mu),     y in [-1, 1],
// and y is quantized uniformly into 256 codes of width 2/256:
//     code = clamp(floor((y + 1) * 128), 0, 255),
// so code 0 holds y in [-1, -1 + 1/128), code 255 holds y in [1 - 1/128, 1] and
// silence (x = 0, y = 0) is code 128. Decoding returns the sample at the centre of the
// code's interval in y:
//     y_c = (code + 0.5) / 128 - 1,     x = sign(y_c) * ((1 + mu)^|y_c| - 1) / mu.
// This is NOT the segmented table of ITU-T G.711 (which approximates F by 8 linear
// segments on 14-bit integers and inverts the bits): spt's tokens are the closed form,
// as in WaveNet and the Sparse Transformer paper, and are not G.711 bytes.
#pragma once

#include <cstdint>
#include <vector>

namespace spt {

inline constexpr double kMuLaw = 255.0;

uint8_t mulaw_encode(float sample);
float mulaw_decode(uint8_t code);

std::vector<uint8_t> mulaw_encode(const std::vector<float>& samples);
std::vector<float> mulaw_decode(const std::vector<uint8_t>& codes);

}  // namespace spt
