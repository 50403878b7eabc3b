// Decoding recordings (WAV, FLAC, OGG/Vorbis/Opus, anything libsndfile reads) into
// mono float samples. libsndfile is optional in the build (SPT_HAVE_SNDFILE); without
// it every call is an error saying so. Reading prepared data sets needs no audio library.
#pragma once

#include <string>
#include <vector>

namespace spt {

struct DecodedAudio {
  int sample_rate = 0;
  std::vector<float> samples;  // (frames), mono, nominally in [-1, 1]
};

// True when this build can decode recordings (it links libsndfile).
bool audio_decoding_available();

// Decodes `path`, mixing any channel count to mono by the mean of the channels. With
// max_seconds > 0 only the first max_seconds of the recording are read. A file that is
// missing, not audio, corrupt or holds no samples is an error naming the file and the
// reason (libsndfile's words; a WAV whose chunks run past its end is refused as
// truncated, which libsndfile alone would accept as a shorter recording).
DecodedAudio decode_audio(const std::string& path, double max_seconds = 0.0);

}  // namespace spt
