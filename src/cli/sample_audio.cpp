#include "cli/sample_audio.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "data/audio_tokens.h"

namespace spt::cli {
namespace {

void check_audio_model(const ModelConfig& model, const std::string& what) {
  SPT_CHECK(model.sample_rate > 0, what, " needs an audio model, and this checkpoint has no sample_rate (it was not ",
            "trained on a prepared audio set: spt prepare, then spt train --data DIR)");
}

}  // namespace

std::vector<uint8_t> audio_prompt_tokens(const ModelConfig& model, const std::string& path, double seconds) {
  check_audio_model(model, "--prompt-audio");
  SPT_CHECK(std::isfinite(seconds) && seconds > 0, "--prompt-seconds ", seconds, " must be positive");
  return audio_file_tokens(path, model.sample_rate, seconds);
}

std::vector<std::string> write_wav_samples(const ModelConfig& model, const std::string& out,
                                           const std::vector<std::vector<uint8_t>>& samples, bool concat) {
  check_audio_model(model, "WAV output (--out " + out + ")");
  std::vector<std::string> paths;
  if (concat || samples.size() == 1) {
    std::vector<uint8_t> all;
    for (const auto& s : samples) all.insert(all.end(), s.begin(), s.end());
    write_tokens_as_wav(out, all, model.sample_rate);
    paths.push_back(out);
    return paths;
  }
  const std::filesystem::path base(out);
  for (size_t k = 0; k < samples.size(); ++k) {
    std::filesystem::path path = base;
    path.replace_filename(base.stem().string() + "-" + std::to_string(k + 1) + base.extension().string());
    write_tokens_as_wav(path.string(), samples[k], model.sample_rate);
    paths.push_back(path.string());
  }
  return paths;
}

}  // namespace spt::cli
