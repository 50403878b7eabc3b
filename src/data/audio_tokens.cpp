#include "data/audio_tokens.h"

#include "core/error.h"
#include "data/audio_decode.h"
#include "data/mulaw.h"
#include "data/resample.h"
#include "io/wav.h"

namespace spt {

std::vector<uint8_t> audio_file_tokens(const std::string& path, int sample_rate, double max_seconds) {
  SPT_CHECK(sample_rate > 0, "sample rate ", sample_rate, " must be positive");
  const DecodedAudio audio = decode_audio(path, max_seconds);
  std::vector<float> samples = resample(audio.samples, audio.sample_rate, sample_rate);
  if (max_seconds > 0) {
    // Resampling rounds the length; keep exactly the first max_seconds at the new rate.
    const auto keep = static_cast<size_t>(max_seconds * sample_rate + 0.5);
    if (samples.size() > keep) samples.resize(keep);
  }
  SPT_CHECK(!samples.empty(), "'", path, "' is too short to give one sample at ", sample_rate, " Hz");
  return mulaw_encode(samples);
}

void write_tokens_as_wav(const std::string& path, const std::vector<uint8_t>& tokens, int sample_rate) {
  write_wav(path, mulaw_decode(tokens), sample_rate);
}

}  // namespace spt
