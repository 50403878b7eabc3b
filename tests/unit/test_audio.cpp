// Audio codecs: the mu-law code against its closed form, the WAV writer and reader,
// decoding through libsndfile and resampling through libsoxr (skipped when the build
// lacks them).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "audio_test_util.h"
#include "core/error.h"
#include "data/audio_decode.h"
#include "data/audio_tokens.h"
#include "data/mulaw.h"
#include "data/resample.h"
#include "io/wav.h"
#include "temp_dir.h"
#include "test_support.h"

#ifdef SPT_HAVE_SNDFILE
#include <sndfile.h>
#endif

namespace spt {
namespace {

using testing_support::contains;
using testing_support::error_of;
using testing_support::TempDir;

long double closed_form(long double x) {
  const long double mu = 255.0L;
  const long double y = std::log1p(mu * std::fabs(x)) / std::log1p(mu);
  return x < 0 ? -y : y;
}

// ---- mu-law ----

TEST(MuLaw, EveryCodeDecodesToTheCentreOfItsIntervalAndBack) {
  for (int code = 0; code < 256; ++code) {
    const long double y = (code + 0.5L) / 128.0L - 1.0L;
    const long double x = (std::pow(256.0L, std::fabs(y)) - 1.0L) / 255.0L * (y < 0 ? -1 : 1);
    const float decoded = mulaw_decode(static_cast<uint8_t>(code));
    EXPECT_NEAR(decoded, static_cast<double>(x), 1e-6 * std::fabs(static_cast<double>(x)) + 1e-9) << code;
    EXPECT_NEAR(static_cast<double>(closed_form(decoded)), static_cast<double>(y), 1e-5) << code;
    EXPECT_EQ(mulaw_encode(decoded), code) << "the centre of code " << code << " encodes elsewhere";
  }
}

TEST(MuLaw, EncodingIsTheUniformQuantizationOfTheClosedForm) {
  EXPECT_EQ(mulaw_encode(0.0f), 128);
  EXPECT_EQ(mulaw_encode(1.0f), 255);
  EXPECT_EQ(mulaw_encode(-1.0f), 0);
  EXPECT_EQ(mulaw_encode(7.0f), 255) << "out-of-range samples are clamped";
  EXPECT_EQ(mulaw_encode(-7.0f), 0);
  EXPECT_EQ(mulaw_encode(std::nanf("")), 128);
  int previous = 0;
  for (int i = 0; i <= 20000; ++i) {
    const float x = -1.0f + 2.0f * static_cast<float>(i) / 20000.0f;
    const int code = mulaw_encode(x);
    const long double scaled = (closed_form(x) + 1.0L) * 128.0L;
    // Away from the code boundaries, the code is floor((F(x) + 1) * 128).
    if (std::fabs(scaled - std::round(scaled)) > 1e-4L) {
      EXPECT_EQ(code, std::min(255, static_cast<int>(std::floor(scaled)))) << x;
    }
    EXPECT_GE(code, previous) << "not monotone at " << x;
    previous = code;
  }
}

// ---- WAV ----

TEST(Wav, WrittenFileHasTheStandardHeaderAndReadsBack) {
  TempDir dir("wav");
  const std::vector<int16_t> pcm = {0, 1, -1, 32767, -32768, 1234, -4321};
  write_wav_pcm16(dir / "a.wav", pcm, 12000);
  const auto bytes = testing_support::read_bytes(dir / "a.wav");
  ASSERT_EQ(bytes.size(), 44 + 2 * pcm.size());
  EXPECT_EQ(std::string(bytes.data(), 4), "RIFF");
  EXPECT_EQ(std::string(bytes.data() + 8, 8), "WAVEfmt ");
  EXPECT_EQ(std::string(bytes.data() + 36, 4), "data");
  uint32_t rate = 0;
  std::memcpy(&rate, bytes.data() + 24, 4);
  EXPECT_EQ(rate, 12000u);
  const WavData back = read_wav_pcm16(dir / "a.wav");
  EXPECT_EQ(back.sample_rate, 12000);
  EXPECT_EQ(back.channels, 1);
  EXPECT_EQ(back.pcm, pcm);
  const auto floats = to_pcm16({0.0f, 1.0f, -1.0f, 2.0f, 0.5f});
  EXPECT_EQ(floats, (std::vector<int16_t>{0, 32767, -32767, 32767, 16384}));
}

TEST(Wav, ReaderRefusesDamagedFilesNamingThem) {
  TempDir dir("wavbad");
  write_wav_pcm16(dir / "good.wav", std::vector<int16_t>(100, 7), 8000);
  auto bytes = testing_support::read_bytes(dir / "good.wav");
  testing_support::write_bytes(dir / "short.wav", std::vector<char>(bytes.begin(), bytes.begin() + 60));
  testing_support::write_bytes(dir / "text.wav", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!'});
  bytes[20] = 3;  // format tag 3: float
  testing_support::write_bytes(dir / "float.wav", bytes);
  for (const char* name : {"short.wav", "text.wav", "float.wav"}) {
    const std::string error = error_of([&] { read_wav_pcm16(dir / name); });
    EXPECT_TRUE(contains(error, name)) << error;
  }
}

// ---- decoding (libsndfile) ----

TEST(AudioDecode, MixesChannelsToMonoAndReadsTheFirstSeconds) {
  if (!audio_decoding_available()) GTEST_SKIP() << "built without libsndfile";
#ifdef SPT_HAVE_SNDFILE
  TempDir dir("decode");
  const int rate = 8000;
  const std::vector<float> left = testing_support::sine(300, rate, 4000), right = testing_support::noise(3, 4000);
  std::vector<float> interleaved;
  for (size_t i = 0; i < left.size(); ++i) interleaved.insert(interleaved.end(), {left[i], right[i]});
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = 2;
  info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
  SNDFILE* file = sf_open((dir / "stereo.flac").c_str(), SFM_WRITE, &info);
  ASSERT_NE(file, nullptr) << sf_strerror(nullptr);
  sf_writef_float(file, interleaved.data(), static_cast<sf_count_t>(left.size()));
  sf_close(file);
  const DecodedAudio audio = decode_audio(dir / "stereo.flac");
  EXPECT_EQ(audio.sample_rate, rate);
  ASSERT_EQ(audio.samples.size(), left.size());
  for (size_t i = 0; i < left.size(); ++i) EXPECT_NEAR(audio.samples[i], (left[i] + right[i]) / 2, 1e-4) << i;
  EXPECT_EQ(decode_audio(dir / "stereo.flac", 0.25).samples.size(), 2000u);
#endif
}

TEST(AudioDecode, CorruptEmptyAndNonAudioFilesAreErrorsNamingTheFile) {
  if (!audio_decoding_available()) {
    const std::string error = error_of([] { decode_audio("x.wav"); });
    EXPECT_TRUE(contains(error, "built without libsndfile")) << error;
    GTEST_SKIP() << "built without libsndfile";
  }
  TempDir dir("decodebad");
  write_wav(dir / "good.wav", testing_support::sine(440, 8000, 800), 8000);
  const auto good = testing_support::read_bytes(dir / "good.wav");
  testing_support::write_bytes(dir / "empty.wav", {});
  testing_support::write_bytes(dir / "header-only.wav", std::vector<char>(good.begin(), good.begin() + 30));
  testing_support::write_bytes(dir / "cut.wav", std::vector<char>(good.begin(), good.begin() + 44 + 800));
  testing_support::write_bytes(dir / "notes.wav", std::vector<char>(200, 'x'));
  write_wav(dir / "silent.wav", {}, 8000);
  for (const char* name : {"empty.wav", "header-only.wav", "cut.wav", "notes.wav", "silent.wav", "missing.wav"}) {
    const std::string error = error_of([&] { decode_audio(dir / name); });
    EXPECT_TRUE(contains(error, name)) << name << ": " << error;
  }
}

// ---- resampling (libsoxr) ----

TEST(Resample, SameRateIsUntouched) {
  const std::vector<float> x = testing_support::noise(9, 1000);
  EXPECT_EQ(resample(x, 8000, 8000), x);
}

TEST(Resample, SineKeepsItsFrequencyAndTheLengthRatio) {
  if (!resampling_available()) {
    const std::string error = error_of([] { resample({0.0f}, 8000, 12000); });
    EXPECT_TRUE(contains(error, "built without libsoxr")) << error;
    GTEST_SKIP() << "built without libsoxr";
  }
  const std::vector<float> x = testing_support::sine(440, 8000, 8000);  // 1 s: 880 zero crossings
  const std::vector<float> up = resample(x, 8000, 12000);
  EXPECT_EQ(up.size(), 12000u);
  EXPECT_NEAR(testing_support::zero_crossings(up), 880, 2);
  const std::vector<float> down = resample(x, 8000, 4000);
  EXPECT_EQ(down.size(), 4000u);
  EXPECT_NEAR(testing_support::zero_crossings(down), 880, 2);
  // Away from the edges the upsampled signal is the same sine at the new rate.
  const std::vector<float> expected = testing_support::sine(440, 12000, 12000);
  for (size_t i = 1000; i < 11000; i += 37) EXPECT_NEAR(up[i], expected[i], 0.02) << i;
}

TEST(AudioTokens, FileToMuLawAtTheModelRate) {
  if (!audio_decoding_available() || !resampling_available()) GTEST_SKIP() << "built without libsndfile or libsoxr";
  TempDir dir("tokens");
  write_wav(dir / "tone.wav", testing_support::sine(200, 8000, 8000), 8000);
  const std::vector<uint8_t> tokens = audio_file_tokens(dir / "tone.wav", 4000);
  EXPECT_EQ(tokens.size(), 4000u);
  EXPECT_EQ(audio_file_tokens(dir / "tone.wav", 4000, 0.5).size(), 2000u);
  EXPECT_EQ(audio_file_tokens(dir / "tone.wav", 8000, 0.1), mulaw_encode(decode_audio(dir / "tone.wav", 0.1).samples));
}

}  // namespace
}  // namespace spt
