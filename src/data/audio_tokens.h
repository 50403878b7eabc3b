// Recording -> mu-law tokens at a model's sample rate: decode (data/audio_decode.h),
// mix to mono, resample (data/resample.h), encode (data/mulaw.h). The one path used by
// `spt prepare` and by `spt sample --prompt-audio`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt {

// The mu-law tokens of `path` at sample_rate Hz; with max_seconds > 0 only the first
// max_seconds of the recording. Errors name the file (see decode_audio, resample).
std::vector<uint8_t> audio_file_tokens(const std::string& path, int sample_rate, double max_seconds = 0.0);

// Tokens back to samples and a mono 16-bit WAV at sample_rate Hz (io/wav.h).
void write_tokens_as_wav(const std::string& path, const std::vector<uint8_t>& tokens, int sample_rate);

}  // namespace spt
