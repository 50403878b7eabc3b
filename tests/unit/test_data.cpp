// Data loading: splits, file formats, training windows and evaluation windows.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "test_support.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::contains;
using testing_support::error_of;

// A fresh directory under the test temp dir, removed with its contents at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (fs::path(testing::TempDir()) / "spt_data_XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(gen() & 0xFF);
  return bytes;
}

// ---- bytes ----

TEST(DataBytes, SplitsNinetyFiveFive) {
  ScratchDir dir;
  for (int64_t n : {1, 7, 10, 20, 99, 1001, 12345}) {
    const std::vector<uint8_t> bytes = random_bytes(static_cast<size_t>(n), static_cast<uint32_t>(n));
    write_file(dir.file("text"), bytes);
    const Dataset data = load_dataset("bytes", dir.file("text"));
    const int64_t train_end = 9 * n / 10, valid_end = 19 * n / 20;  // floor(0.9 n), floor(0.95 n)
    EXPECT_FALSE(data.images());
    EXPECT_EQ(data.train.size(), train_end) << n;
    EXPECT_EQ(data.valid.size(), valid_end - train_end) << n;
    EXPECT_EQ(data.test.size(), n - valid_end) << n;
    EXPECT_EQ(data.train.record_size, 0);
    std::vector<uint8_t> joined = data.train.tokens;
    joined.insert(joined.end(), data.valid.tokens.begin(), data.valid.tokens.end());
    joined.insert(joined.end(), data.test.tokens.begin(), data.test.tokens.end());
    EXPECT_EQ(joined, bytes) << n;
    EXPECT_EQ(data.split("valid").name, "valid");
  }
}

TEST(DataBytes, EmptyOrMissingFileIsAnError) {
  ScratchDir dir;
  write_file(dir.file("empty"), {});
  EXPECT_TRUE(contains(error_of([&] { load_dataset("bytes", dir.file("empty")); }), dir.file("empty")));
  EXPECT_TRUE(contains(error_of([&] { load_dataset("bytes", dir.file("absent")); }), dir.file("absent")));
  EXPECT_TRUE(contains(error_of([&] { load_dataset("bytes", dir.path()); }), dir.path()));
}

TEST(DataFormat, UnknownFormatAndSplitListTheChoices) {
  const std::string format_error = error_of([] { load_dataset("npz", "/nonexistent"); });
  for (const char* name : {"npz", "bytes", "idx", "cifar10"}) EXPECT_TRUE(contains(format_error, name)) << format_error;
  const Dataset data;
  const std::string split_error = error_of([&] { data.split("validation"); });
  for (const char* name : {"train", "valid", "test"}) EXPECT_TRUE(contains(split_error, name)) << split_error;
}

// ---- training windows ----

TEST(DataTraining, BatchIsAPureFunctionOfSeedAndDraw) {
  TokenSplit split{"train", random_bytes(5000, 3), 0};
  const int64_t T = 32;
  const int B = 4;
  std::vector<uint8_t> a(B * T), b(B * T), c(B * T), d(B * T);
  training_batch(split, T, B, 7, 11, a.data());
  training_batch(split, T, B, 7, 11, b.data());
  training_batch(split, T, B, 7, 12, c.data());
  training_batch(split, T, B, 8, 11, d.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  // Every window is a substring of the split.
  for (const auto* batch : {&a, &c, &d})
    for (int i = 0; i < B; ++i) {
      const auto first = batch->begin() + i * T;
      EXPECT_NE(std::search(split.tokens.begin(), split.tokens.end(), first, first + T), split.tokens.end());
    }
  // Rows of one draw are distinct draws, not copies.
  EXPECT_FALSE(std::equal(a.begin(), a.begin() + T, a.begin() + T));
}

TEST(DataTraining, StreamOffsetsReachEveryValidStartUniformly) {
  // Token i is i, so a window's first token is its offset.
  std::vector<uint8_t> tokens(40);
  for (int i = 0; i < 40; ++i) tokens[i] = static_cast<uint8_t>(i);
  TokenSplit split{"train", tokens, 0};
  const int64_t T = 36;  // offsets 0..4
  const int B = 4, draws = 500;
  std::vector<int> seen(5, 0);
  std::vector<uint8_t> batch(B * T);
  for (int draw = 0; draw < draws; ++draw) {
    training_batch(split, T, B, 1, draw, batch.data());
    for (int i = 0; i < B; ++i) {
      const int offset = batch[i * T];
      ASSERT_LE(offset, 4);
      for (int t = 0; t < T; ++t) ASSERT_EQ(batch[i * T + t], offset + t);
      ++seen[offset];
    }
  }
  // 2000 draws of 5 offsets: mean 400, sd 17.9; 6 sd either way.
  for (int offset = 0; offset < 5; ++offset) {
    EXPECT_GT(seen[offset], 400 - 108) << offset;
    EXPECT_LT(seen[offset], 400 + 108) << offset;
  }
}

TEST(DataTraining, RecordsAreWholeImages) {
  const int64_t size = 6, records = 10;
  std::vector<uint8_t> tokens(size * records);
  for (int64_t r = 0; r < records; ++r)
    for (int64_t t = 0; t < size; ++t) tokens[r * size + t] = static_cast<uint8_t>(r * 16 + t);
  TokenSplit split{"train", tokens, size};
  std::vector<int> seen(records, 0);
  std::vector<uint8_t> batch(8 * size);
  for (int draw = 0; draw < 50; ++draw) {
    training_batch(split, size, 8, 2, draw, batch.data());
    for (int i = 0; i < 8; ++i) {
      const int r = batch[i * size] / 16;
      ASSERT_LT(r, records);
      for (int t = 0; t < size; ++t) ASSERT_EQ(batch[i * size + t], r * 16 + t);
      ++seen[r];
    }
  }
  for (int r = 0; r < records; ++r) EXPECT_GT(seen[r], 0) << r;
  EXPECT_TRUE(contains(error_of([&] { training_batch(split, size + 1, 1, 1, 0, batch.data()); }), "--ctx 6"));
}

TEST(DataTraining, BadArgumentsAreErrors) {
  TokenSplit split{"valid", std::vector<uint8_t>(10), 0};
  std::vector<uint8_t> batch(64);
  EXPECT_TRUE(contains(error_of([&] { training_batch(split, 11, 1, 1, 0, batch.data()); }), "valid"));
  training_batch(split, 10, 1, 1, 0, batch.data());  // the whole split is one window
  EXPECT_FALSE(error_of([&] { training_batch(split, 0, 1, 1, 0, batch.data()); }).empty());
  EXPECT_FALSE(error_of([&] { training_batch(split, 4, 0, 1, 0, batch.data()); }).empty());
}

// ---- evaluation windows ----

// Checks that the windows stay inside the split and score each token exactly once.
void expect_every_token_scored_once(const TokenSplit& split, int64_t T) {
  const std::vector<EvalWindow> windows = eval_windows(split, T);
  std::vector<int> scored(static_cast<size_t>(split.size()), 0);
  for (const EvalWindow& w : windows) {
    ASSERT_GE(w.start, 0);
    ASSERT_LE(w.start + T, split.size());
    ASSERT_GE(w.score_from, 0);
    ASSERT_LT(w.score_from, T);
    for (int64_t p = w.score_from; p < T; ++p) ++scored[static_cast<size_t>(w.start + p)];
  }
  for (int64_t i = 0; i < split.size(); ++i) ASSERT_EQ(scored[i], 1) << "token " << i << " n " << split.size() << " T " << T;
}

TEST(DataEval, StreamWindowsScoreEveryTokenOnce) {
  const std::vector<std::pair<int64_t, int64_t>> cases = {{1, 1},   {5, 1},   {16, 16}, {17, 16}, {31, 16},
                                                          {32, 16}, {33, 16}, {100, 7}, {1000, 64}, {1023, 1024 - 1}};
  for (const auto& [n, T] : cases) {
    TokenSplit split{"test", std::vector<uint8_t>(static_cast<size_t>(n)), 0};
    expect_every_token_scored_once(split, T);
    const std::vector<EvalWindow> windows = eval_windows(split, T);
    ASSERT_EQ(static_cast<int64_t>(windows.size()), (n + T - 1) / T) << n << " " << T;
    for (int64_t w = 0; w < n / T; ++w) {
      EXPECT_EQ(windows[w].start, w * T);
      EXPECT_EQ(windows[w].score_from, 0);
    }
    if (n % T != 0) {
      EXPECT_EQ(windows.back().start, n - T);
      EXPECT_EQ(windows.back().score_from, T - n % T);
    }
  }
  TokenSplit short_split{"valid", std::vector<uint8_t>(10), 0};
  EXPECT_TRUE(contains(error_of([&] { eval_windows(short_split, 11); }), "valid"));
}

TEST(DataEval, RecordsAreOneWindowEach) {
  TokenSplit split{"test", std::vector<uint8_t>(7 * 12), 12};
  expect_every_token_scored_once(split, 12);
  const std::vector<EvalWindow> windows = eval_windows(split, 12);
  ASSERT_EQ(windows.size(), 7u);
  for (int r = 0; r < 7; ++r) EXPECT_EQ(windows[r].start, r * 12);
  EXPECT_FALSE(error_of([&] { eval_windows(split, 11); }).empty());
}

// ---- IDX ----

// Pixel j of image i of a synthetic set.
uint8_t idx_pixel(int64_t i, int64_t j) { return static_cast<uint8_t>((i * 37 + j * 5 + 1) % 256); }

std::vector<uint8_t> idx_file(uint32_t magic, int32_t count, int32_t rows, int32_t cols) {
  std::vector<uint8_t> bytes;
  for (uint32_t word : {magic, static_cast<uint32_t>(count), static_cast<uint32_t>(rows), static_cast<uint32_t>(cols)})
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(word >> shift));
  for (int64_t i = 0; i < count; ++i)
    for (int64_t j = 0; j < int64_t{rows} * cols; ++j) bytes.push_back(idx_pixel(i, j));
  return bytes;
}

constexpr char kTrainImages[] = "train-images-idx3-ubyte";
constexpr char kTestImages[] = "t10k-images-idx3-ubyte";

TEST(DataIdx, PlainAndGzipGiveTheSameSplits) {
  ScratchDir dir;
  const std::vector<uint8_t> train = idx_file(0x803, 26, 3, 4), test = idx_file(0x803, 5, 3, 4);
  write_file(dir.file("plain/") + kTrainImages, train);
  write_file(dir.file("plain/") + kTestImages, test);
  fs::create_directories(dir.file("gz"));
  write_gzip(dir.file("gz/") + kTrainImages + ".gz", train);
  write_gzip(dir.file("gz/") + kTestImages + ".gz", test);
  const Dataset plain = load_dataset("idx", dir.file("plain"));
  const Dataset gz = load_dataset("idx", dir.file("gz"));
  for (const Dataset* data : {&plain, &gz}) {
    EXPECT_EQ(data->rows, 3);
    EXPECT_EQ(data->cols, 4);
    EXPECT_EQ(data->channels, 1);
    EXPECT_TRUE(data->images());
    // 26 training images: min(5000, 26 / 12) = 2 held out.
    EXPECT_EQ(data->train.records(), 24);
    EXPECT_EQ(data->valid.records(), 2);
    EXPECT_EQ(data->test.records(), 5);
    for (const TokenSplit* split : {&data->train, &data->valid, &data->test}) EXPECT_EQ(split->record_size, 12);
    for (int64_t j = 0; j < 12; ++j) {
      EXPECT_EQ(data->train.tokens[23 * 12 + j], idx_pixel(23, j));
      EXPECT_EQ(data->valid.tokens[0 * 12 + j], idx_pixel(24, j));
      EXPECT_EQ(data->valid.tokens[1 * 12 + j], idx_pixel(25, j));
      EXPECT_EQ(data->test.tokens[4 * 12 + j], idx_pixel(4, j));
    }
  }
  EXPECT_EQ(plain.train.tokens, gz.train.tokens);
  EXPECT_EQ(plain.valid.tokens, gz.valid.tokens);
  EXPECT_EQ(plain.test.tokens, gz.test.tokens);
  EXPECT_EQ(std::vector<uint8_t>(train.begin() + 16, train.begin() + 16 + 24 * 12), plain.train.tokens);
}

TEST(DataIdx, BadFilesAreErrorsNamingTheFile) {
  ScratchDir dir;
  const std::string train_path = dir.file(kTrainImages), test_path = dir.file(kTestImages);
  write_file(test_path, idx_file(0x803, 5, 3, 4));

  write_file(train_path, idx_file(0x801, 24, 3, 4));  // a labels-style magic
  std::string error = error_of([&] { load_dataset("idx", dir.path()); });
  EXPECT_TRUE(contains(error, train_path) && contains(error, "magic")) << error;

  std::vector<uint8_t> truncated = idx_file(0x803, 24, 3, 4);
  truncated.resize(truncated.size() - 5);
  write_file(train_path, truncated);
  error = error_of([&] { load_dataset("idx", dir.path()); });
  EXPECT_TRUE(contains(error, train_path) && contains(error, "expected 304") && contains(error, "holds 299"))
      << error;

  write_file(train_path, idx_file(0x803, 24, 4, 3));  // transposed dimensions
  error = error_of([&] { load_dataset("idx", dir.path()); });
  EXPECT_TRUE(contains(error, train_path) && contains(error, test_path)) << error;

  write_file(train_path, idx_file(0x803, 0, 3, 4));
  error = error_of([&] { load_dataset("idx", dir.path()); });
  EXPECT_TRUE(contains(error, train_path) && contains(error, "> 0")) << error;

  write_file(train_path, idx_file(0x803, 11, 3, 4));  // too few to hold out 1/12
  error = error_of([&] { load_dataset("idx", dir.path()); });
  EXPECT_TRUE(contains(error, train_path) && contains(error, "11")) << error;

  // A gzip stream cut short.
  fs::remove(train_path);
  write_gzip(train_path + ".gz", idx_file(0x803, 24, 3, 4));
  std::vector<uint8_t> gz_bytes;
  {
    std::ifstream in(train_path + ".gz", std::ios::binary);
    gz_bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  gz_bytes.resize(gz_bytes.size() / 2);
  write_file(train_path + ".gz", gz_bytes);
  error = error_of([&] { load_dataset("idx", dir.path()); });
  EXPECT_TRUE(contains(error, train_path + ".gz")) << error;

  fs::remove(train_path + ".gz");
  error = error_of([&] { load_dataset("idx", dir.path()); });
  EXPECT_TRUE(contains(error, train_path) && contains(error, kTestImages) && contains(error, ".gz")) << error;

  error = error_of([&] { load_dataset("idx", test_path); });
  EXPECT_TRUE(contains(error, test_path) && contains(error, "not a directory")) << error;
}

TEST(DataIdx, FashionMnistWhenInstalled) {
  const std::string path = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(fs::path(path) / "train-images-idx3-ubyte.gz") && !fs::exists(fs::path(path) / kTrainImages))
    GTEST_SKIP() << path << " is not installed (apt-get install -y dataset-fashion-mnist)";
  const Dataset data = load_dataset("idx", path);
  EXPECT_EQ(data.rows, 28);
  EXPECT_EQ(data.cols, 28);
  EXPECT_EQ(data.channels, 1);
  EXPECT_EQ(data.train.records(), 55000);
  EXPECT_EQ(data.valid.records(), 5000);
  EXPECT_EQ(data.test.records(), 10000);
  EXPECT_EQ(data.train.size(), 55000 * 784);
  ModelConfig model;
  model.ctx = 784;
  model.pos_sizes = {28, 28, 1};
  check_model_fits(data, model);
}

// ---- CIFAR-10 ----

// Byte of channel `ch` at pixel p (row * 32 + col) of training or test image g.
uint8_t cifar_value(int g, int ch, int p) { return static_cast<uint8_t>((g * 31 + ch * 101 + p * 7 + 3) % 256); }

std::vector<uint8_t> cifar_batch(int first_image, int images) {
  std::vector<uint8_t> bytes;
  for (int g = first_image; g < first_image + images; ++g) {
    bytes.push_back(static_cast<uint8_t>(g % 10));  // label
    for (int ch = 0; ch < 3; ++ch)
      for (int p = 0; p < 1024; ++p) bytes.push_back(cifar_value(g, ch, p));
  }
  return bytes;
}

void write_cifar(const std::string& dir, int per_batch, int test_images) {
  for (int b = 1; b <= 5; ++b)
    write_file(dir + "/data_batch_" + std::to_string(b) + ".bin", cifar_batch((b - 1) * per_batch, per_batch));
  write_file(dir + "/test_batch.bin", cifar_batch(1000, test_images));
}

TEST(DataCifar10, ConvertsChannelMajorToRasterWithChannelFastest) {
  ScratchDir dir;
  write_cifar(dir.path(), 3, 2);  // 15 training images: 15 / 12 = 1 held out
  const Dataset data = load_dataset("cifar10", dir.path());
  EXPECT_EQ(data.rows, 32);
  EXPECT_EQ(data.cols, 32);
  EXPECT_EQ(data.channels, 3);
  EXPECT_EQ(data.train.records(), 14);
  EXPECT_EQ(data.valid.records(), 1);
  EXPECT_EQ(data.test.records(), 2);
  EXPECT_EQ(data.train.record_size, 3072);
  // Image 0, row 1, col 2: token (1 * 32 + 2) * 3 + ch is byte 1 + ch * 1024 + 34 of the file.
  const std::vector<uint8_t> file = cifar_batch(0, 3);
  EXPECT_EQ(data.train.tokens[102], file[1 + 34]);
  EXPECT_EQ(data.train.tokens[103], file[1 + 1024 + 34]);
  EXPECT_EQ(data.train.tokens[104], file[1 + 2048 + 34]);
  // Image 2 (third record of batch 1), last pixel, blue.
  EXPECT_EQ(data.train.tokens[2 * 3072 + 1023 * 3 + 2], file[2 * 3073 + 1 + 2048 + 1023]);
  auto check = [](const TokenSplit& split, int first_image) {
    for (int64_t r = 0; r < split.records(); ++r)
      for (int row = 0; row < 32; ++row)
        for (int col = 0; col < 32; ++col)
          for (int ch = 0; ch < 3; ++ch)
            ASSERT_EQ(split.tokens[r * 3072 + (row * 32 + col) * 3 + ch],
                      cifar_value(static_cast<int>(first_image + r), ch, row * 32 + col))
                << split.name << " " << r << " " << row << " " << col << " " << ch;
  };
  check(data.train, 0);
  check(data.valid, 14);
  check(data.test, 1000);
}

TEST(DataCifar10, AcceptsTheUnpackedArchiveParent) {
  ScratchDir dir;
  write_cifar(dir.file("cifar-10-batches-bin"), 3, 1);
  const Dataset data = load_dataset("cifar10", dir.path());
  EXPECT_EQ(data.train.records() + data.valid.records(), 15);
}

TEST(DataCifar10, BadFilesAreErrorsNamingTheFile) {
  ScratchDir dir;
  write_cifar(dir.path(), 3, 1);
  std::vector<uint8_t> bad = cifar_batch(0, 3);
  bad.pop_back();
  write_file(dir.file("data_batch_2.bin"), bad);
  std::string error = error_of([&] { load_dataset("cifar10", dir.path()); });
  EXPECT_TRUE(contains(error, dir.file("data_batch_2.bin")) && contains(error, "3073")) << error;
  fs::remove(dir.file("data_batch_2.bin"));
  error = error_of([&] { load_dataset("cifar10", dir.path()); });
  EXPECT_TRUE(contains(error, dir.file("data_batch_2.bin"))) << error;
  write_file(dir.file("data_batch_2.bin"), cifar_batch(0, 3));
  fs::remove(dir.file("test_batch.bin"));
  error = error_of([&] { load_dataset("cifar10", dir.path()); });
  EXPECT_TRUE(contains(error, dir.file("test_batch.bin"))) << error;
}

// ---- model fit ----

TEST(DataFit, ImagesNeedMatchingContextAndPositions) {
  Dataset data;
  data.rows = 3;
  data.cols = 4;
  data.channels = 1;
  data.path = "digits";
  ModelConfig model;
  model.ctx = 12;
  model.pos_sizes = {3, 4, 1};
  check_model_fits(data, model);
  model.ctx = 16;
  std::string error = error_of([&] { check_model_fits(data, model); });
  EXPECT_TRUE(contains(error, "16") && contains(error, "--ctx 12")) << error;
  model.ctx = 12;
  model.pos_sizes = {4, 3};
  error = error_of([&] { check_model_fits(data, model); });
  EXPECT_TRUE(contains(error, "4,3") && contains(error, "--pos-sizes 3,4,1")) << error;
}

TEST(DataFit, StreamSplitsMustHoldAContext) {
  Dataset data;
  data.path = "text";
  data.train = {"train", std::vector<uint8_t>(900), 0};
  data.valid = {"valid", std::vector<uint8_t>(50), 0};
  data.test = {"test", std::vector<uint8_t>(50), 0};
  ModelConfig model;
  model.ctx = 50;
  check_model_fits(data, model);
  model.ctx = 64;
  const std::string error = error_of([&] { check_model_fits(data, model); });
  EXPECT_TRUE(contains(error, "valid") && contains(error, "50") && contains(error, "64")) << error;
}

}  // namespace
}  // namespace spt
