// `spt sample` for audio models (ModelConfig::sample_rate > 0): a recording as the
// prompt, and mu-law samples written as listenable 16-bit WAV files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace spt::cli {

// The mu-law tokens of the first `seconds` of `path` at the model's rate (decoded,
// mixed to mono and resampled as `spt prepare` does). More than the context is allowed:
// `spt sample` keeps the last T - 1 tokens of any prompt, with a notice.
std::vector<uint8_t> audio_prompt_tokens(const ModelConfig& model, const std::string& path, double seconds);

// Writes the samples as WAV at the model's rate: one file `out` for a single sample or
// with `concat` (all samples one after another), else out's stem plus "-1", "-2", ...
// (clip.wav -> clip-1.wav, clip-2.wav). Returns the paths written.
std::vector<std::string> write_wav_samples(const ModelConfig& model, const std::string& out,
                                           const std::vector<std::vector<uint8_t>>& samples, bool concat);

}  // namespace spt::cli
