#include "io/wav.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/file_util.h"
#include "io/input_file.h"

namespace spt {
namespace {

constexpr int kHeaderBytes = 44;
constexpr uint32_t kMaxRiffBytes = 0xFFFFFFFFu;

void put_u32(uint8_t* p, uint32_t v) {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (8 * k));
}
void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
uint32_t get_u32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

std::vector<uint8_t> slurp(const std::string& path) {
  const int64_t size = file_size(path);
  std::ifstream in(path, std::ios::binary);
  SPT_CHECK(in, "cannot open '", path, "'");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  SPT_CHECK(in.gcount() == size, "cannot read '", path, "': got ", in.gcount(), " of ", size, " bytes");
  return bytes;
}

}  // namespace

std::vector<int16_t> to_pcm16(const std::vector<float>& samples) {
  std::vector<int16_t> pcm(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const float x = std::isnan(samples[i]) ? 0.0f : std::clamp(samples[i], -1.0f, 1.0f);
    pcm[i] = static_cast<int16_t>(std::lround(x * 32767.0f));
  }
  return pcm;
}

void write_wav_pcm16(const std::string& path, const std::vector<int16_t>& samples, int sample_rate) {
  SPT_CHECK(sample_rate > 0, "WAV sample rate ", sample_rate, " must be positive");
  const uint64_t data_bytes = uint64_t{samples.size()} * 2;
  SPT_CHECK(data_bytes + kHeaderBytes - 8 <= kMaxRiffBytes, "'", path, "': ", samples.size(),
            " samples exceed the 4 GiB limit of a WAV file; write shorter clips");
  uint8_t header[kHeaderBytes];
  std::memcpy(header, "RIFF", 4);
  put_u32(header + 4, static_cast<uint32_t>(data_bytes + kHeaderBytes - 8));
  std::memcpy(header + 8, "WAVEfmt ", 8);
  put_u32(header + 16, 16);                                        // fmt chunk size
  put_u16(header + 20, 1);                                         // PCM
  put_u16(header + 22, 1);                                         // mono
  put_u32(header + 24, static_cast<uint32_t>(sample_rate));
  put_u32(header + 28, static_cast<uint32_t>(sample_rate) * 2);    // bytes per second
  put_u16(header + 32, 2);                                         // bytes per frame
  put_u16(header + 34, 16);                                        // bits per sample
  std::memcpy(header + 36, "data", 4);
  put_u32(header + 40, static_cast<uint32_t>(data_bytes));
  std::vector<uint8_t> body(static_cast<size_t>(data_bytes));
  for (size_t i = 0; i < samples.size(); ++i) put_u16(body.data() + 2 * i, static_cast<uint16_t>(samples[i]));
  write_file_atomically(path, [&](OutputFile& out) {
    out.write(header, kHeaderBytes);
    out.write(body.data(), static_cast<int64_t>(body.size()));
  });
}

void write_wav(const std::string& path, const std::vector<float>& samples, int sample_rate) {
  write_wav_pcm16(path, to_pcm16(samples), sample_rate);
}

WavData read_wav_pcm16(const std::string& path) {
  const std::vector<uint8_t> bytes = slurp(path);
  const uint8_t* p = bytes.data();
  const size_t n = bytes.size();
  SPT_CHECK(n >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WAVE", 4) == 0, "'", path,
            "' is not a WAV file (no RIFF/WAVE header)");
  WavData wav;
  bool have_format = false;
  for (size_t at = 12; at + 8 <= n;) {
    const uint32_t size = get_u32(p + at + 4);
    const size_t body = at + 8;
    SPT_CHECK(size <= n - body, "'", path, "': chunk '", std::string(reinterpret_cast<const char*>(p + at), 4),
              "' of ", size, " bytes runs past the end of the file (", n, " bytes): truncated?");
    if (std::memcmp(p + at, "fmt ", 4) == 0) {
      SPT_CHECK(size >= 16, "'", path, "': fmt chunk of ", size, " bytes is too short");
      const uint16_t tag = get_u16(p + body), bits = get_u16(p + body + 14);
      wav.channels = get_u16(p + body + 2);
      wav.sample_rate = static_cast<int>(get_u32(p + body + 4));
      SPT_CHECK(tag == 1 && bits == 16, "'", path, "' holds format ", tag, " with ", bits,
                "-bit samples; this reader takes 16-bit PCM only (format 1)");
      SPT_CHECK(wav.channels >= 1 && wav.sample_rate > 0, "'", path, "': ", wav.channels, " channels at ",
                wav.sample_rate, " Hz is not a valid format");
      have_format = true;
    } else if (std::memcmp(p + at, "data", 4) == 0) {
      SPT_CHECK(have_format, "'", path, "': data chunk before the fmt chunk");
      const size_t frame = size_t{2} * static_cast<size_t>(wav.channels);
      wav.pcm.resize(size / frame * static_cast<size_t>(wav.channels));
      for (size_t i = 0; i < wav.pcm.size(); ++i) wav.pcm[i] = static_cast<int16_t>(get_u16(p + body + 2 * i));
      return wav;
    }
    at = body + size + (size & 1);  // chunks are padded to an even size
  }
  throw Error(message("'", path, "' has no ", have_format ? "data" : "fmt", " chunk: not a complete WAV file"));
}

void check_riff_not_truncated(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint8_t head[12] = {};
  if (!in.read(reinterpret_cast<char*>(head), 12) || std::memcmp(head, "RIFF", 4) != 0) return;
  const int64_t n = file_size(path);
  for (int64_t at = 12; at + 8 <= n;) {
    uint8_t chunk[8];
    in.seekg(at);
    SPT_CHECK(in.read(reinterpret_cast<char*>(chunk), 8), "cannot read '", path, "' at byte ", at);
    const int64_t size = get_u32(chunk + 4);
    SPT_CHECK(at + 8 + size <= n, "'", path, "' is truncated: its '", std::string(reinterpret_cast<char*>(chunk), 4),
              "' chunk of ", size, " bytes runs past the end of the file (", n, " bytes)");
    at += 8 + size + (size & 1);
  }
}

}  // namespace spt
