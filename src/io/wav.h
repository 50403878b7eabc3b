// RIFF WAVE files of 16-bit PCM, written and read by spt itself (no audio library):
// `spt sample` writes listenable audio on machines without libsndfile, and the tests
// read it back. Other encodings (float, 8/24/32-bit, compressed) go through libsndfile
// in data/audio_decode.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt {

// Samples in [-1, 1] (clamped) as 16-bit PCM: round(x * 32767).
std::vector<int16_t> to_pcm16(const std::vector<float>& samples);

// Writes a mono 16-bit PCM WAV (44-byte header, then the samples little-endian)
// atomically through io/file_util.h: `path` is either its old self or the whole file.
void write_wav_pcm16(const std::string& path, const std::vector<int16_t>& samples, int sample_rate);
void write_wav(const std::string& path, const std::vector<float>& samples, int sample_rate);

struct WavData {
  int sample_rate = 0;
  int channels = 0;
  std::vector<int16_t> pcm;  // (frames, channels), interleaved
  int64_t frames() const { return channels > 0 ? static_cast<int64_t>(pcm.size()) / channels : 0; }
};

// Reads a 16-bit PCM WAV (format tag 1, any channel count); unknown chunks are
// skipped. A file that is not such a WAV, or whose chunk sizes run past its end, is an
// error naming the file and the reason; sizes are checked against the file before any
// buffer is sized from them.
WavData read_wav_pcm16(const std::string& path);

// For a RIFF file (any WAV): walks the chunk headers and refuses a chunk that runs past
// the end of the file, which libsndfile would read as a shorter recording without a
// word. Files that do not start with "RIFF" pass untouched.
void check_riff_not_truncated(const std::string& path);

}  // namespace spt
