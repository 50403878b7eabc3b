#include "data/audio_decode.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "io/wav.h"

#ifdef SPT_HAVE_SNDFILE
#include <sndfile.h>
#endif

namespace spt {

#ifdef SPT_HAVE_SNDFILE

bool audio_decoding_available() { return true; }

DecodedAudio decode_audio(const std::string& path, double max_seconds) {
  check_riff_not_truncated(path);
  SF_INFO info{};
  std::unique_ptr<SNDFILE, int (*)(SNDFILE*)> file(sf_open(path.c_str(), SFM_READ, &info), &sf_close);
  SPT_CHECK(file, "cannot decode '", path, "': ", sf_strerror(nullptr));
  SPT_CHECK(info.channels >= 1 && info.samplerate > 0, "cannot decode '", path, "': ", info.channels,
            " channels at ", info.samplerate, " Hz");
  // Normalize integer formats to [-1, 1) and keep float files as they are.
  sf_command(file.get(), SFC_SET_NORM_FLOAT, nullptr, SF_TRUE);
  int64_t wanted = INT64_MAX;
  if (max_seconds > 0) wanted = static_cast<int64_t>(std::ceil(max_seconds * info.samplerate));
  DecodedAudio audio;
  audio.sample_rate = info.samplerate;
  // Read in pieces: the frame count in the header is not trusted to size a buffer.
  constexpr sf_count_t kFrames = 65536;
  std::vector<float> piece(static_cast<size_t>(kFrames) * static_cast<size_t>(info.channels));
  while (static_cast<int64_t>(audio.samples.size()) < wanted) {
    const sf_count_t ask = std::min<int64_t>(kFrames, wanted - static_cast<int64_t>(audio.samples.size()));
    const sf_count_t got = sf_readf_float(file.get(), piece.data(), ask);
    for (sf_count_t f = 0; f < got; ++f) {
      float sum = 0.0f;
      for (int c = 0; c < info.channels; ++c) sum += piece[static_cast<size_t>(f * info.channels + c)];
      audio.samples.push_back(sum / static_cast<float>(info.channels));
    }
    if (got < ask) break;
  }
  const int error = sf_error(file.get());
  SPT_CHECK(error == SF_ERR_NO_ERROR, "cannot decode '", path, "': ", sf_error_number(error));
  SPT_CHECK(!audio.samples.empty(), "'", path, "' holds no audio samples (an empty recording)");
  return audio;
}

#else

bool audio_decoding_available() { return false; }

DecodedAudio decode_audio(const std::string& path, double) {
  throw Error(message("cannot decode '", path, "': spt was built without libsndfile; install libsndfile1-dev ",
                      "and rebuild, or prepare the data set on a machine that has it"));
}

#endif

}  // namespace spt
