// Prepared data sets: splits of whole clips, the writer and the reader (sizes, CRC,
// forged indexes), clip-aware training and evaluation windows, and `spt prepare`'s
// library path on synthesized recordings.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "audio_test_util.h"
#include "core/error.h"
#include "data/audio_decode.h"
#include "data/audio_tokens.h"
#include "data/dataset.h"
#include "data/formats.h"
#include "data/prepare.h"
#include "data/prepared_writer.h"
#include "data/resample.h"
#include "model/config_json.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::contains;
using testing_support::error_of;
using testing_support::TempDir;

std::vector<uint8_t> ramp(int64_t n, int first) {
  std::vector<uint8_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<uint8_t>(first + i);
  return t;
}

struct Written {
  std::string name, split;
  std::vector<uint8_t> tokens;
};

void write_set(const std::string& dir, const std::vector<Written>& clips, int rate = 8000, bool force = false) {
  PreparedWriter writer(dir, force);
  for (const Written& c : clips) writer.add_clip(c.name, c.split, c.tokens.data(), static_cast<int64_t>(c.tokens.size()));
  writer.finish(rate > 0 ? "audio" : "text", rate);
}

std::vector<Written> sample_clips() {
  return {{"a.wav", "train", ramp(100, 0)}, {"b.wav", "train", ramp(7, 50)}, {"c.wav", "train", ramp(40, 90)},
          {"d.wav", "valid", ramp(30, 3)}, {"e.wav", "test", ramp(25, 9)}, {"f.wav", "test", ramp(12, 200)}};
}

std::vector<uint8_t> split_bytes(const TokenSplit& s) { return {s.data(), s.data() + s.size()}; }

// ---- splits ----

TEST(PrepareSplits, DeterministicWholeClipsNinetyFiveFive) {
  const auto a = assign_splits(200, 7), b = assign_splits(200, 7), c = assign_splits(200, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c) << "the seed should change the split";
  std::map<std::string, int> counts;
  for (const auto& s : a) ++counts[s];
  EXPECT_EQ(counts["train"], 180);
  EXPECT_EQ(counts["valid"], 10);
  EXPECT_EQ(counts["test"], 10);
  for (int64_t n : {3, 4, 19, 21}) {
    std::map<std::string, int> small;
    for (const auto& s : assign_splits(n, 1)) ++small[s];
    EXPECT_GE(small["train"], 1) << n;
    EXPECT_GE(small["valid"], 1) << n;
    EXPECT_GE(small["test"], 1) << n;
    EXPECT_EQ(small["train"] + small["valid"] + small["test"], n);
  }
  EXPECT_TRUE(contains(error_of([] { assign_splits(2, 1); }), "at least 3"));
}

// ---- writer and reader ----

TEST(Prepared, ReadBackEqualsWhatWasWritten) {
  TempDir dir("prep");
  const std::string set = dir / "set";
  write_set(set, sample_clips());
  EXPECT_TRUE(is_prepared_directory(set));
  const Dataset data = load_dataset("prepared", set);
  EXPECT_EQ(data.format, "prepared");
  EXPECT_EQ(data.modality, "audio");
  EXPECT_EQ(data.sample_rate, 8000);
  std::map<std::string, std::vector<uint8_t>> joined;
  std::map<std::string, std::vector<ClipRange>> ranges;
  int64_t at[3] = {0, 0, 0};
  for (const Written& c : sample_clips()) {
    joined[c.split].insert(joined[c.split].end(), c.tokens.begin(), c.tokens.end());
    const int r = split_rank(c.split);
    ranges[c.split].push_back({at[r], static_cast<int64_t>(c.tokens.size())});
    at[r] += static_cast<int64_t>(c.tokens.size());
  }
  for (const TokenSplit* s : {&data.train, &data.valid, &data.test}) {
    EXPECT_EQ(split_bytes(*s), joined[s->name]) << s->name;
    ASSERT_EQ(s->clips.size(), ranges[s->name].size()) << s->name;
    for (size_t k = 0; k < s->clips.size(); ++k) {
      EXPECT_EQ(s->clips[k].start, ranges[s->name][k].start);
      EXPECT_EQ(s->clips[k].length, ranges[s->name][k].length);
    }
  }
}

TEST(Prepared, ExistingSetIsKeptWithoutForceAndAFailedWriteLeavesNothing) {
  TempDir dir("prepforce");
  const std::string set = dir / "set";
  write_set(set, sample_clips());
  EXPECT_TRUE(contains(error_of([&] { write_set(set, sample_clips(), 16000); }), "--force"));
  EXPECT_EQ(load_dataset("prepared", set).sample_rate, 8000);
  write_set(set, sample_clips(), 16000, true);
  EXPECT_EQ(load_dataset("prepared", set).sample_rate, 16000);
  fs::create_directories(dir / "other");
  testing_support::write_bytes(dir / "other/keep.txt", {'k'});
  EXPECT_TRUE(contains(error_of([&] { write_set(dir / "other", sample_clips(), 8000, true); }), "not a prepared"));
  EXPECT_TRUE(fs::exists(dir / "other/keep.txt"));
  {
    PreparedWriter unfinished(dir / "half", false);
    unfinished.add_clip("a", "train", ramp(5, 0).data(), 5);
  }
  EXPECT_FALSE(fs::exists(dir / "half"));
  for (const auto& entry : fs::directory_iterator(dir.path()))
    EXPECT_FALSE(contains(entry.path().filename().string(), ".tmp-")) << entry.path();
}

class PreparedDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    write_set(set_, sample_clips());
    std::ifstream in(set_ + "/index.json");
    in >> index_;
  }
  void write_index(const nlohmann::json& json) {
    std::ofstream(set_ + "/index.json", std::ios::trunc) << json.dump();
  }
  std::string load_error() { return error_of([&] { load_dataset("prepared", set_); }); }

  TempDir dir_{"prepdamage"};
  std::string set_ = dir_ / "set";
  nlohmann::json index_;
};

TEST_F(PreparedDamage, FlippedOrTruncatedTokensAreRefused) {
  auto bytes = testing_support::read_bytes(set_ + "/tokens.bin");
  bytes[17] ^= 1;
  testing_support::write_bytes(set_ + "/tokens.bin", bytes);
  std::string error = load_error();
  EXPECT_TRUE(contains(error, "tokens.bin") && contains(error, "CRC-32")) << error;
  bytes.pop_back();
  testing_support::write_bytes(set_ + "/tokens.bin", bytes);
  error = load_error();
  EXPECT_TRUE(contains(error, "tokens.bin") && contains(error, "bytes")) << error;
  fs::remove(set_ + "/tokens.bin");
  EXPECT_TRUE(contains(load_error(), "tokens.bin"));
}

TEST_F(PreparedDamage, ForgedOrBrokenIndexIsRefusedNamingIt) {
  const std::vector<std::function<void(nlohmann::json&)>> forgeries = {
      [](nlohmann::json& j) { j["total_tokens"] = int64_t{1} << 60; },
      [](nlohmann::json& j) { j["clips"][1]["length"] = int64_t{1} << 60; },
      [](nlohmann::json& j) { j["clips"][1]["length"] = -5; },
      [](nlohmann::json& j) { j["clips"][2]["offset"] = 3; },
      [](nlohmann::json& j) { j["clips"][0]["split"] = "valid"; },
      [](nlohmann::json& j) { j["clips"][0]["split"] = "holdout"; },
      [](nlohmann::json& j) { j["splits"]["train"]["tokens"] = 1; },
      [](nlohmann::json& j) { j["sample_rate"] = -1; },
      [](nlohmann::json& j) { j["encoding"] = "pcm16"; },
      [](nlohmann::json& j) { j["version"] = 99; },
      [](nlohmann::json& j) { j["format"] = "other"; },
      [](nlohmann::json& j) { j.erase("clips"); },
      [](nlohmann::json& j) { j["clips"][3].erase("name"); },
      [](nlohmann::json& j) { j["tokens_crc32"] = "abc"; },
  };
  for (size_t k = 0; k < forgeries.size(); ++k) {
    nlohmann::json forged = index_;
    forgeries[k](forged);
    write_index(forged);
    const std::string error = load_error();
    EXPECT_TRUE(contains(error, "index.json")) << "forgery " << k << ": " << error;
  }
  std::ofstream(set_ + "/index.json", std::ios::trunc) << "{\"format\": \"spt-prep";
  EXPECT_TRUE(contains(load_error(), "index.json"));
  write_index(index_);
  EXPECT_EQ(load_error(), "") << "the original index must load again";
}

// ---- clip-aware windows ----

TokenSplit clip_split() {
  TokenSplit s;
  s.name = "train";
  s.tokens = ramp(10 + 3 + 20 + 5, 0);
  s.clips = {{0, 10}, {10, 3}, {13, 20}, {33, 5}};
  return s;
}

TEST(ClipWindows, TrainingWindowsStayInsideOneClipAndReachEveryStart) {
  const TokenSplit s = clip_split();
  const int64_t T = 5;
  std::set<int64_t> starts;
  std::vector<uint8_t> batch(8 * T);
  for (int64_t draw = 0; draw < 400; ++draw) {
    training_batch(s, T, 8, 3, draw, batch.data());
    for (int b = 0; b < 8; ++b) {
      const int64_t start = batch[static_cast<size_t>(b * T)];  // ramp: token value = position
      bool inside = false;
      for (const ClipRange& c : s.clips) inside = inside || (start >= c.start && start + T <= c.start + c.length);
      EXPECT_TRUE(inside) << "window at " << start << " crosses a clip";
      starts.insert(start);
    }
  }
  EXPECT_EQ(starts.size(), static_cast<size_t>(6 + 0 + 16 + 1)) << "every valid start is drawn";
  std::vector<uint8_t> again(8 * T);
  training_batch(s, T, 8, 3, 17, batch.data());
  training_batch(s, T, 8, 3, 17, again.data());
  EXPECT_EQ(batch, again);
}

TEST(ClipWindows, OneClipBehavesExactlyAsAStream) {
  TokenSplit stream;
  stream.name = "train";
  stream.tokens = ramp(200, 0);
  TokenSplit clipped = stream;
  clipped.clips = {{0, 200}};
  std::vector<uint8_t> a(4 * 16), b(4 * 16);
  for (int64_t draw = 0; draw < 20; ++draw) {
    training_batch(stream, 16, 4, 5, draw, a.data());
    training_batch(clipped, 16, 4, 5, draw, b.data());
    EXPECT_EQ(a, b);
  }
  const auto ws = eval_windows(stream, 16), wc = eval_windows(clipped, 16);
  ASSERT_EQ(ws.size(), wc.size());
  for (size_t k = 0; k < ws.size(); ++k) {
    EXPECT_EQ(ws[k].start, wc[k].start);
    EXPECT_EQ(ws[k].score_from, wc[k].score_from);
  }
}

TEST(ClipWindows, EvalScoresEveryTokenOfLongClipsOnceAndCountsShortOnes) {
  const TokenSplit s = clip_split();
  const int64_t T = 5;
  std::vector<int> scored(static_cast<size_t>(s.size()), 0);
  for (const EvalWindow& w : eval_windows(s, T)) {
    bool inside = false;
    for (const ClipRange& c : s.clips) inside = inside || (w.start >= c.start && w.start + T <= c.start + c.length);
    EXPECT_TRUE(inside) << w.start;
    for (int64_t t = w.score_from; t < T; ++t) ++scored[static_cast<size_t>(w.start + t)];
  }
  for (int64_t p = 0; p < s.size(); ++p) {
    const bool in_short = p >= 10 && p < 13;
    EXPECT_EQ(scored[static_cast<size_t>(p)], in_short ? 0 : 1) << p;
  }
  EXPECT_EQ(short_clip_tokens(s, T), 3);
  EXPECT_TRUE(contains(error_of([&] { eval_windows(s, 21); }), "shorter than ctx"));
}

// ---- sample rate in the model config ----

TEST(SampleRate, InModelJsonOnlyForAudioAndAdoptedFromTheData) {
  ModelConfig model;
  EXPECT_FALSE(to_json(model).contains("sample_rate")) << "text/image configs read as before";
  model.sample_rate = 12000;
  ModelConfig back;
  update_from_json(back, to_json(model), "test");
  EXPECT_EQ(back.sample_rate, 12000);
  Dataset data;
  data.path = "set";
  data.sample_rate = 8000;
  ModelConfig fresh;
  adopt_sample_rate(data, fresh);
  EXPECT_EQ(fresh.sample_rate, 8000);
  EXPECT_TRUE(contains(error_of([&] { adopt_sample_rate(data, model); }), "12000"));
}

// ---- spt prepare's library path ----

TEST(PrepareText, OneClipCutByTheEnwik8Rule) {
  TempDir dir("preptext");
  std::vector<char> text(1234);
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i % 26);
  testing_support::write_bytes(dir / "book.txt", text);
  PrepareOptions o;
  o.modality = "text";
  o.source = dir / "book.txt";
  o.out = dir / "set";
  o.progress = false;
  prepare_dataset(o);
  const Dataset prepared = load_dataset("prepared", o.out), bytes = load_dataset("bytes", o.source);
  EXPECT_EQ(prepared.modality, "text");
  EXPECT_EQ(prepared.sample_rate, 0);
  for (const char* name : {"train", "valid", "test"})
    EXPECT_EQ(split_bytes(prepared.split(name)), bytes.split(name).tokens) << name;
}

class PrepareAudio : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!audio_decoding_available()) GTEST_SKIP() << "built without libsndfile";
    fs::create_directories(dir_ / "rec/sub");
    for (int k = 0; k < 5; ++k) {
      const auto x = k % 2 ? testing_support::sine(150 + 50 * k, 8000, 800 + 100 * k)
                           : testing_support::noise(static_cast<uint64_t>(k), 900 + 10 * k);
      write_wav(dir_ / ("rec/" + std::string(k < 3 ? "" : "sub/") + "clip" + std::to_string(k) + (k == 4 ? ".WAV" : ".wav")),
                x, 8000);
    }
    testing_support::write_bytes(dir_ / "rec/readme.md", {'n', 'o'});
    options_.source = dir_ / "rec";
    options_.out = dir_ / "set";
    options_.sample_rate = 8000;
    options_.progress = false;
  }
  TempDir dir_{"prepaudio"};
  PrepareOptions options_;
};

TEST_F(PrepareAudio, DirectoryIsFoundSortedAndEveryClipReadsBack) {
  const std::vector<std::string> sources = audio_sources(options_.source, "");
  ASSERT_EQ(sources.size(), 5u);
  EXPECT_TRUE(std::is_sorted(sources.begin(), sources.end()));
  const PrepareResult r = prepare_dataset(options_);
  const Dataset data = load_dataset("prepared", options_.out);
  std::set<std::string> names;
  for (const PreparedClip& clip : r.index.clips) {
    EXPECT_TRUE(names.insert(clip.name).second) << clip.name << " is in two splits";
    const TokenSplit& split = data.split(clip.split);
    const std::vector<uint8_t> expected = audio_file_tokens((dir_ / "rec/") + clip.name, 8000);
    bool found = false;
    for (const ClipRange& range : split.clips)
      found = found || std::equal(expected.begin(), expected.end(), split.data() + range.start,
                                  split.data() + range.start + range.length);
    EXPECT_TRUE(found) << clip.name;
  }
  EXPECT_EQ(names.size(), 5u);
  // The same sources and seed give the same set, byte for byte.
  options_.out = dir_ / "again";
  prepare_dataset(options_);
  EXPECT_EQ(testing_support::read_bytes(dir_ / "set/tokens.bin"), testing_support::read_bytes(dir_ / "again/tokens.bin"));
  EXPECT_EQ(testing_support::read_bytes(dir_ / "set/index.json"), testing_support::read_bytes(dir_ / "again/index.json"));
}

TEST_F(PrepareAudio, BadRecordingsAreErrorsNamingThemOrSkippedAndCounted) {
  testing_support::write_bytes(dir_ / "rec/empty.wav", {});
  testing_support::write_bytes(dir_ / "rec/notes.ogg", std::vector<char>(300, 'z'));
  const auto good = testing_support::read_bytes(dir_ / "rec/clip1.wav");
  testing_support::write_bytes(dir_ / "rec/cut.flac", std::vector<char>(good.begin(), good.begin() + 100));
  const std::string error = error_of([&] { prepare_dataset(options_); });
  EXPECT_TRUE(contains(error, "cut.flac") || contains(error, "empty.wav") || contains(error, "notes.ogg")) << error;
  EXPECT_FALSE(fs::exists(options_.out)) << "no half-written set";
  options_.skip_bad = true;
  const PrepareResult r = prepare_dataset(options_);
  EXPECT_EQ(r.skipped, 3);
  EXPECT_EQ(r.index.clips.size(), 5u);
}

TEST_F(PrepareAudio, ListFileAndResampling) {
  if (!resampling_available()) GTEST_SKIP() << "built without libsoxr";
  std::ofstream(dir_ / "list.txt") << "# three recordings\nrec/clip0.wav\n\n" << (dir_ / "rec/clip1.wav") << "\nrec/sub/clip3.wav\n";
  options_.source = dir_ / "list.txt";
  options_.sample_rate = 4000;
  const PrepareResult r = prepare_dataset(options_);
  ASSERT_EQ(r.index.clips.size(), 3u);
  int64_t total = 0;
  for (const PreparedClip& clip : r.index.clips) total += clip.length;
  EXPECT_EQ(total, 450 + 450 + 550) << "8000 -> 4000 Hz halves every clip";
  EXPECT_EQ(load_dataset("prepared", options_.out).sample_rate, 4000);
}

}  // namespace
}  // namespace spt
