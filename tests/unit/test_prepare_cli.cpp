// Raw audio end to end through the built binary: synthesized recordings -> `spt prepare`
// -> `spt train` -> `spt eval` -> `spt sample --out x.wav`, and the CLI's audio errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "audio_test_util.h"
#include "data/audio_decode.h"
#include "data/resample.h"
#include "io/wav.h"
#include "temp_dir.h"
#include "test_support.h"
#include "train/checkpoint.h"

namespace spt {
namespace {

using testing_support::contains;
using testing_support::CliResult;
using testing_support::slurp;
using testing_support::TempDir;

CliResult spt(const TempDir& dir, const std::string& args) { return testing_support::run_spt(dir.path(), args); }

TEST(AudioCli, PrepareTrainEvalSampleToWav) {
  if (!audio_decoding_available() || !resampling_available()) GTEST_SKIP() << "built without libsndfile or libsoxr";
  TempDir dir("audiocli");
  std::filesystem::create_directories(dir / "rec");
  for (int k = 0; k < 4; ++k)
    write_wav(dir / ("rec/r" + std::to_string(k) + ".wav"),
              k % 2 ? testing_support::sine(300 + 100 * k, 8000, 2400) : testing_support::noise(k + 1, 2400), 8000);
  const std::string set = dir / "set";
  CliResult r = spt(dir, "prepare " + (dir / "rec") + " --sample-rate 2000 --out " + set);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "4/4 clips")) << r.err;
  EXPECT_TRUE(contains(r.out, "2000 Hz")) << r.out;
  EXPECT_NE(spt(dir, "prepare " + (dir / "rec") + " --out " + set).code, 0) << "an existing set needs --force";

  const std::string run = dir / "run";
  r = spt(dir, "train --preset tiny --data-format prepared --data " + set + " --steps 2 --batch 2 --out " + run);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(run + "/checkpoint").model.sample_rate, 2000);
  r = spt(dir, "train --preset tiny --data " + set + " --sample-rate 16000 --steps 1 --out " + (dir / "run2"));
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(contains(r.err, "16000") && contains(r.err, "2000")) << r.err;

  r = spt(dir, "eval --checkpoint " + run + "/checkpoint --split valid");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "valid:")) << r.out;

  r = spt(dir, "sample --checkpoint " + run + "/checkpoint --count 2 --length 50 --out " + (dir / "x.wav"));
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* name : {"x-1.wav", "x-2.wav"}) {
    const WavData wav = read_wav_pcm16(dir / name);
    EXPECT_EQ(wav.sample_rate, 2000) << name;
    EXPECT_EQ(wav.channels, 1);
    EXPECT_EQ(wav.frames(), 50);
  }
  r = spt(dir, "sample --checkpoint " + run + "/checkpoint --count 2 --length 40 --concat --out " + (dir / "all.wav") +
                   " --prompt-audio " + (dir / "rec/r1.wav") + " --prompt-seconds 0.01");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_wav_pcm16(dir / "all.wav").frames(), 80);
  // Past the context of 64 (the window slides), after a prompt of 200 samples cut to its last 63.
  r = spt(dir, "sample --checkpoint " + run + "/checkpoint --length 150 --out " + (dir / "long.wav") +
                   " --prompt-audio " + (dir / "rec/r1.wav") + " --prompt-seconds 0.1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "the prompt has 200 tokens, more than the context of 64 holds: keeping its last 63"))
      << r.err;
  EXPECT_EQ(read_wav_pcm16(dir / "long.wav").frames(), 150);
}

TEST(AudioCli, WavOutputAndAudioPromptsNeedAnAudioModel) {
  TempDir dir("audiocli-text");
  std::string text;
  for (int k = 0; k < 300; ++k) text += "the quick brown fox ";
  std::ofstream(dir / "text.txt") << text;
  CliResult r = spt(dir, "prepare --modality text " + (dir / "text.txt") + " --out " + (dir / "set"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = spt(dir, "train --preset tiny --data " + (dir / "set") + " --steps 1 --out " + (dir / "run"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(slurp(dir / "run/config.json"), "\"prepared\"")) << "a directory with index.json is a prepared set";
  r = spt(dir, "sample --checkpoint " + (dir / "run/checkpoint") + " --length 20 --out " + (dir / "x.wav"));
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, ".wav does not fit a text model")) << r.err;
  r = spt(dir, "sample --checkpoint " + (dir / "run/checkpoint") + " --length 20 --prompt-audio a.wav");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "audio model")) << r.err;
  r = spt(dir, "prepare " + (dir / "nothing") + " --out " + (dir / "set2"));
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "nothing")) << r.err;
}

}  // namespace
}  // namespace spt
