// `spt prepare` for images: the strict .npy header reader, .npz members, the channel-
// planar -> channel-fastest reorder, PNG / JPEG folders and tar archives, the split
// rules, the image index (forged ones refused), and the prepared set read back equal to
// what the IDX and CIFAR-10 loaders give for the same images.
#include <gtest/gtest.h>
#include <png.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/formats.h"
#include "data/image_arrays.h"
#include "data/image_splits.h"
#include "data/prepare.h"
#include "io/byte_source.h"
#include "io/image_decode.h"
#include "io/jpeg.h"
#include "io/json_limits.h"
#include "io/npy.h"
#include "io/png.h"
#include "io/tar_index.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::contains;
using testing_support::error_of;
using testing_support::TempDir;

// A .npy file: magic, version, little-endian header length, the dict padded with spaces
// to a multiple of 64 and ended by a newline, then the data.
std::vector<char> npy_bytes(const std::string& dict, const std::vector<uint8_t>& data, int version = 1) {
  const size_t preamble = version == 1 ? 10 : 12;
  std::string header = dict;
  while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::vector<char> out = {'\x93', 'N', 'U', 'M', 'P', 'Y', static_cast<char>(version), 0};
  for (size_t k = 0; k < preamble - 8; ++k) out.push_back(static_cast<char>((header.size() >> (8 * k)) & 0xFF));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string uint8_dict(const std::string& shape) {
  return "{'descr': '|u1', 'fortran_order': False, 'shape': " + shape + ", }";
}

NpyHeader header_of(const std::vector<char>& bytes) {
  return parse_npy_header(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size()), "x.npy");
}

std::string header_error(const std::vector<char>& bytes, const TempDir& dir) {
  testing_support::write_bytes(dir / "bad.npy", bytes);
  return error_of([&] {
    const auto source = open_file_source(dir / "bad.npy");
    read_npy_header(*source);
  });
}

// Images g = 0..n-1 of h x w x c pixels whose value tells the image, pixel and channel.
std::vector<Image> test_images(int n, int h, int w, int c, int salt = 0) {
  std::vector<Image> images;
  for (int g = 0; g < n; ++g) {
    Image image{w, h, c, std::vector<uint8_t>(static_cast<size_t>(h * w * c))};
    for (size_t k = 0; k < image.pixels.size(); ++k) image.pixels[k] = static_cast<uint8_t>((g * 37 + k * 11 + salt) % 256);
    images.push_back(image);
  }
  return images;
}

// Image g as one channel-planar row, as the ImageNet arrays store it.
std::vector<uint8_t> planar(const Image& image) {
  std::vector<uint8_t> row(image.pixels.size());
  const size_t pixels = static_cast<size_t>(image.width) * image.height;
  for (size_t p = 0; p < pixels; ++p)
    for (int ch = 0; ch < image.channels; ++ch) row[ch * pixels + p] = image.pixels[p * image.channels + ch];
  return row;
}

std::vector<uint8_t> split_bytes(const TokenSplit& s) { return {s.data(), s.data() + s.size()}; }

PrepareOptions options(const std::string& source, const std::string& out) {
  PrepareOptions o;
  o.source = source;
  o.out = out;
  o.progress = false;
  return o;
}

void expect_same_dataset(const Dataset& prepared, const Dataset& direct) {
  EXPECT_EQ(prepared.format, "prepared");
  EXPECT_EQ(prepared.modality, "image");
  EXPECT_EQ(prepared.rows, direct.rows);
  EXPECT_EQ(prepared.cols, direct.cols);
  EXPECT_EQ(prepared.channels, direct.channels);
  for (const char* name : {"train", "valid", "test"}) {
    EXPECT_EQ(prepared.split(name).record_size, direct.split(name).record_size) << name;
    EXPECT_EQ(prepared.split(name).records(), direct.split(name).records()) << name;
    EXPECT_EQ(split_bytes(prepared.split(name)), split_bytes(direct.split(name))) << name;
  }
}

bool have_numpy() { return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

// Runs a Python program with /usr/bin/python3 (numpy, zipfile) in `dir`.
void python(const TempDir& dir, const std::string& program) {
  std::ofstream(dir / "make.py") << program;
  ASSERT_EQ(std::system(("cd '" + dir.path() + "' && /usr/bin/python3 make.py").c_str()), 0) << program;
}

// ---- the strict integer reader ----

TEST(JsonInteger, TypeAndRangeAreCheckedAndTheErrorNamesKeyFileAndValue) {
  const nlohmann::json j = nlohmann::json::parse(R"({"a": 7, "b": 2.5, "c": true, "d": "7", "e": 18446744073709551615, "f": -3})");
  EXPECT_EQ(json_integer(j["a"], "a", 0, 10, "f.json"), 7);
  EXPECT_EQ(json_integer(j["f"], "f", -3, 0, "f.json"), -3);
  for (const char* key : {"b", "c", "d", "e", "f"}) {
    const std::string error = error_of([&] { json_integer(j[key], key, 0, INT64_MAX, "f.json"); });
    EXPECT_TRUE(contains(error, "f.json") && contains(error, std::string("'") + key + "'") &&
                contains(error, json_excerpt(j[key])))
        << error;
  }
  EXPECT_TRUE(contains(error_of([&] { json_integer(j["a"], "a", 0, 6, "f.json", {}, "fix it"); }), "0..6, got 7; fix it"));
}

// ---- .npy headers ----

TEST(NpyHeader, VersionsOneTwoThreeParse) {
  for (int version : {1, 2, 3}) {
    const NpyHeader h = header_of(npy_bytes(uint8_dict("(2, 12)"), std::vector<uint8_t>(24), version));
    EXPECT_EQ(h.shape, (std::vector<int64_t>{2, 12})) << version;
    EXPECT_EQ(h.header_bytes % 64, 0) << version;
    EXPECT_EQ(h.elements(), 24);
  }
  EXPECT_EQ(header_of(npy_bytes("{'shape':(5,),'fortran_order':False,'descr':'<u1'}", {})).shape,
            (std::vector<int64_t>{5}));
  EXPECT_EQ(header_of(npy_bytes(uint8_dict("()"), {})).elements(), 1);
}

TEST(NpyHeader, MalformedHeadersAreRefusedNamingTheFileAndValue) {
  TempDir dir("npyhdr");
  const std::vector<uint8_t> data(24);
  const std::vector<char> good = npy_bytes(uint8_dict("(2, 12)"), data);
  EXPECT_EQ(header_error(good, dir), "");
  const std::vector<std::pair<std::vector<char>, std::string>> cases = {
      {std::vector<char>(good.begin(), good.begin() + 9), "bad.npy"},
      {std::vector<char>(good.begin(), good.begin() + 40), "bad.npy"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 12), }", data), "'<f4'"},
      {npy_bytes("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 12), }", data), "fortran_order is True"},
      {npy_bytes(uint8_dict("(2, 13)"), data), "26 bytes but 24"},
      {npy_bytes(uint8_dict("(2, 11)"), data), "trailing"},
      {npy_bytes(uint8_dict("(4611686018427387904, 4)"), data), "2^63"},
      {npy_bytes(uint8_dict("(99999999999999999999,)"), data), "2^63"},
      {npy_bytes(uint8_dict("(1048576, 1048576)"), data), "1099511627776 bytes but 24"},
      {npy_bytes(uint8_dict("(2, -12)"), data), "dimension"},
      {npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 12), 'x': 1}", data), "'x'"},
      {npy_bytes("{'descr': '|u1', 'descr': '|u1', 'shape': (2, 12), }", data), "repeats"},
      {npy_bytes("{'descr': '|u1', 'shape': (2, 12), }", data), "lacks"},
      {npy_bytes(uint8_dict("(2, 12)") + " junk", data), "after the closing"},
      {npy_bytes(uint8_dict("(2, 12)"), data, 4), "version 4.0"},
  };
  for (const auto& [bytes, part] : cases) {
    const std::string error = header_error(bytes, dir);
    EXPECT_TRUE(contains(error, "bad.npy") && contains(error, part)) << part << ": " << error;
  }
  std::vector<char> magic = good;
  magic[1] = 'X';
  EXPECT_TRUE(contains(header_error(magic, dir), "magic"));
}

// ---- arrays: the reorder, .npz members, shapes ----

TEST(ImageArrays, ChannelPlanarRowsBecomeChannelFastestOnATinyKnownArray) {
  TempDir dir("npyorder");
  // Two 2x2 RGB images: planes R = 0..3, G = 10..13, B = 20..23 (+100 for the second).
  std::vector<uint8_t> data;
  for (int g = 0; g < 2; ++g)
    for (int ch = 0; ch < 3; ++ch)
      for (int p = 0; p < 4; ++p) data.push_back(static_cast<uint8_t>(100 * g + 10 * ch + p));
  testing_support::write_bytes(dir / "a.npy", npy_bytes(uint8_dict("(2, 12)"), data));
  const ImageArrayFile file = probe_image_array(dir / "a.npy");
  EXPECT_EQ(file.images, 2);
  EXPECT_EQ(file.shape, (ImageShape{2, 2, 3}));
  std::vector<uint8_t> raster;
  read_image_array(file, [&](int64_t, int64_t count, const uint8_t* pixels) {
    raster.insert(raster.end(), pixels, pixels + count * 12);
  });
  EXPECT_EQ(raster, (std::vector<uint8_t>{0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23,  //
                                          100, 110, 120, 101, 111, 121, 102, 112, 122, 103, 113, 123}));
  testing_support::write_bytes(dir / "grey.npy", npy_bytes(uint8_dict("(1, 9)"), std::vector<uint8_t>(9)));
  EXPECT_EQ(probe_image_array(dir / "grey.npy").shape, (ImageShape{3, 3, 1}));
  for (const std::string shape : {"(2, 10)", "(20,)", "(2, 3, 4)", "(0, 12)"}) {
    const int64_t n = shape == "(20,)" ? 20 : shape == "(2, 10)" ? 20 : shape == "(0, 12)" ? 0 : 24;
    testing_support::write_bytes(dir / "odd.npy", npy_bytes(uint8_dict(shape), std::vector<uint8_t>(static_cast<size_t>(n))));
    const std::string error = error_of([&] { probe_image_array(dir / "odd.npy"); });
    EXPECT_TRUE(contains(error, "odd.npy")) << shape << ": " << error;
  }
}

TEST(ImageArrays, NpzMembersAndDamagedZipsAreRefusedNamingThem) {
  if (!zip_reading_available()) GTEST_SKIP() << "built without libzip";
  TempDir dir("npz");
  testing_support::write_bytes(dir / "corrupt.npz", std::vector<char>(300, 'z'));
  EXPECT_TRUE(contains(error_of([&] { probe_image_array(dir / "corrupt.npz"); }), "corrupt.npz"));
  if (std::system("/usr/bin/python3 -c 'import zipfile' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no /usr/bin/python3";
  // Zips written with Python's zipfile: no numpy needed for these.
  testing_support::write_bytes(dir / "member.npy", npy_bytes(uint8_dict("(2, 12)"), std::vector<uint8_t>(24, 5)));
  python(dir, "import zipfile\n"
              "zipfile.ZipFile('nodata.npz', 'w').write('member.npy', 'labels.npy')\n"
              "zipfile.ZipFile('good.npz', 'w', zipfile.ZIP_DEFLATED).write('member.npy', 'data.npy')\n");
  std::string error = error_of([&] { probe_image_array(dir / "nodata.npz"); });
  EXPECT_TRUE(contains(error, "nodata.npz") && contains(error, "data.npy")) << error;
  const ImageArrayFile good = probe_image_array(dir / "good.npz");
  EXPECT_EQ(good.images, 2);
  // A flipped byte inside the compressed member: libzip's inflate or CRC check refuses it.
  std::vector<char> bytes = testing_support::read_bytes(dir / "good.npz");
  bytes[bytes.size() / 2] ^= 0x55;
  testing_support::write_bytes(dir / "flipped.npz", bytes);
  error = error_of([&] { read_image_array(probe_image_array(dir / "flipped.npz"), [](int64_t, int64_t, const uint8_t*) {}); });
  EXPECT_TRUE(contains(error, "flipped.npz")) << error;
  bytes = testing_support::read_bytes(dir / "good.npz");
  bytes.resize(bytes.size() - 30);
  testing_support::write_bytes(dir / "cut.npz", bytes);
  EXPECT_TRUE(contains(error_of([&] { probe_image_array(dir / "cut.npz"); }), "cut.npz"));
}

// ---- the split rules ----

TEST(ImageSplits, TagsNaturalOrderAndRules) {
  EXPECT_EQ(image_tag("train_data_batch_3.npz"), ImageTag::train);
  EXPECT_EQ(image_tag("train"), ImageTag::train);
  EXPECT_EQ(image_tag("val_data.npz"), ImageTag::val);
  EXPECT_EQ(image_tag("valid_64x64"), ImageTag::val);
  EXPECT_EQ(image_tag("Test"), ImageTag::test);
  EXPECT_EQ(image_tag("trainer"), ImageTag::none);
  EXPECT_TRUE(natural_less("batch_2", "batch_10"));
  EXPECT_FALSE(natural_less("batch_10", "batch_2"));
  EXPECT_TRUE(natural_less("a/1.png", "a/01.png") != natural_less("a/01.png", "a/1.png")) << "a strict order";
  const auto name = [](int64_t k) { return "image " + std::to_string(k); };
  // train + val: val is the test split, the last 1/12 (at most 5,000) of train is valid.
  std::vector<ImageTag> tags(24, ImageTag::train);
  tags.insert(tags.end(), 3, ImageTag::val);
  std::vector<uint8_t> ranks = plan_image_splits(tags, 1, name);
  EXPECT_EQ(std::vector<uint8_t>(ranks.begin(), ranks.begin() + 22), std::vector<uint8_t>(22, 0));
  EXPECT_EQ(std::vector<uint8_t>(ranks.begin() + 22, ranks.end()), (std::vector<uint8_t>{1, 1, 2, 2, 2}));
  tags.push_back(ImageTag::test);
  ranks = plan_image_splits(tags, 1, name);
  EXPECT_EQ(ranks[23], 0) << "train, val and test: no hold-out";
  EXPECT_EQ(ranks[24], 1);
  EXPECT_EQ(ranks.back(), 2);
  // Untagged: the seeded split by image, a pure function of (n, seed).
  const std::vector<ImageTag> none(100, ImageTag::none);
  EXPECT_EQ(plan_image_splits(none, 3, name), plan_image_splits(none, 3, name));
  EXPECT_NE(plan_image_splits(none, 3, name), plan_image_splits(none, 4, name));
  tags[5] = ImageTag::none;
  EXPECT_TRUE(contains(error_of([&] { plan_image_splits(tags, 1, name); }), "image 5"));
  EXPECT_TRUE(contains(error_of([&] { plan_image_splits({ImageTag::val, ImageTag::test}, 1, name); }), "no train"));
}

// ---- prepared image sets equal the direct loaders ----

void write_cifar_batches(const TempDir& dir, const std::vector<Image>& train, const std::vector<Image>& test) {
  fs::create_directories(dir / "cifar");
  const auto batch = [](const std::vector<Image>& images, size_t from, size_t to) {
    std::vector<char> out;
    for (size_t g = from; g < to; ++g) {
      out.push_back(static_cast<char>(g % 10));  // the label byte
      for (uint8_t v : planar(images[g])) out.push_back(static_cast<char>(v));
    }
    return out;
  };
  for (size_t b = 0; b < 5; ++b)
    testing_support::write_bytes(dir / ("cifar/data_batch_" + std::to_string(b + 1) + ".bin"),
                                 batch(train, b * train.size() / 5, (b + 1) * train.size() / 5));
  testing_support::write_bytes(dir / "cifar/test_batch.bin", batch(test, 0, test.size()));
}

TEST(PrepareImages, CifarAndIdxDirectoriesGiveTheLoadersDataset) {
  TempDir dir("prepcifar");
  write_cifar_batches(dir, test_images(15, 32, 32, 3), test_images(2, 32, 32, 3, 5));
  prepare_dataset(options(dir / "cifar", dir / "set"));
  expect_same_dataset(load_dataset("prepared", dir / "set"), load_cifar10(dir / "cifar"));
  fs::create_directories(dir / "idx");
  const auto idx = [](int n) {
    std::vector<char> out = {0, 0, 8, 3, 0, 0, 0, static_cast<char>(n), 0, 0, 0, 3, 0, 0, 0, 4};
    for (int k = 0; k < n * 12; ++k) out.push_back(static_cast<char>(k * 7 % 256));
    return out;
  };
  testing_support::write_bytes(dir / "idx/train-images-idx3-ubyte", idx(26));
  testing_support::write_bytes(dir / "idx/t10k-images-idx3-ubyte", idx(5));
  prepare_dataset(options(dir / "idx", dir / "idxset"));
  expect_same_dataset(load_dataset("prepared", dir / "idxset"), load_idx(dir / "idx"));
}

TEST(PrepareImages, NpzBatchesLikeImageNet64GiveTheCifarLoadersDataset) {
  if (!zip_reading_available()) GTEST_SKIP() << "built without libzip";
  if (!have_numpy()) GTEST_SKIP() << "no numpy for /usr/bin/python3 (apt-get install python3-numpy)";
  TempDir dir("prepnpz");
  const std::vector<Image> train = test_images(15, 32, 32, 3), test = test_images(2, 32, 32, 3, 5);
  write_cifar_batches(dir, train, test);
  // The same images as ImageNet-64-style arrays: rows channel-planar, train split over
  // batches 2 and 10 (so the order must be numeric), the test images in val_data.
  std::vector<uint8_t> rows;
  for (const Image& image : train) for (uint8_t v : planar(image)) rows.push_back(v);
  std::vector<uint8_t> test_rows;
  for (const Image& image : test) for (uint8_t v : planar(image)) test_rows.push_back(v);
  testing_support::write_bytes(dir / "train.raw", std::vector<char>(rows.begin(), rows.end()));
  testing_support::write_bytes(dir / "val.raw", std::vector<char>(test_rows.begin(), test_rows.end()));
  fs::create_directories(dir / "in");
  python(dir, "import numpy as np\n"
              "t = np.fromfile('train.raw', np.uint8).reshape(15, 3072)\n"
              "np.savez('in/train_data_batch_2.npz', data=t[:9], labels=np.arange(9), mean=np.zeros(3072))\n"
              "np.savez_compressed('in/train_data_batch_10.npz', data=t[9:], labels=np.arange(6))\n"
              "np.savez('in/val_data.npz', data=np.fromfile('val.raw', np.uint8).reshape(2, 3072))\n"
              "np.save('one.npy', t)\n");
  PrepareOptions o = options(dir / "in", dir / "set");
  EXPECT_EQ(prepare_modality(o), "image") << "detected from the .npz files";
  const PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.index.images, (std::array<int64_t, 3>{14, 1, 2}));
  expect_same_dataset(load_dataset("prepared", dir / "set"), load_cifar10(dir / "cifar"));
  // One .npy: the seeded split by image, every image once.
  const PrepareResult one = prepare_dataset(options(dir / "one.npy", dir / "one"));
  EXPECT_EQ(one.index.images[0] + one.index.images[1] + one.index.images[2], 15);
  EXPECT_EQ(one.index.images[1], 1);
}

// ---- PNG / JPEG folders and tars ----

void write_folder(const TempDir& dir, const std::string& sub, const std::vector<Image>& images, const std::string& stem) {
  fs::create_directories(dir / sub);
  for (size_t k = 0; k < images.size(); ++k) write_png(dir / (sub + "/" + stem + std::to_string(k) + ".png"), images[k]);
}

TEST(PrepareImages, PngFolderWithTrainAndTestSubfoldersKeepsPixelsAndOrder) {
  TempDir dir("preppng");
  const std::vector<Image> train = test_images(13, 5, 4, 3), test = test_images(3, 5, 4, 3, 9);
  write_folder(dir, "src/train", train, "img");
  write_folder(dir, "src/test", test, "t");
  const PrepareResult r = prepare_dataset(options(dir / "src", dir / "set"));
  EXPECT_EQ(r.index.image, (ImageShape{5, 4, 3}));
  EXPECT_EQ(r.index.images, (std::array<int64_t, 3>{12, 1, 3}));
  const Dataset data = load_dataset("prepared", dir / "set");
  // Natural order: img0, img1, ..., img12; the last one is held out for valid.
  std::vector<uint8_t> expected;
  for (int k = 0; k < 12; ++k) expected.insert(expected.end(), train[k].pixels.begin(), train[k].pixels.end());
  EXPECT_EQ(split_bytes(data.train), expected);
  EXPECT_EQ(split_bytes(data.valid), train[12].pixels);
  EXPECT_EQ(std::vector<uint8_t>(data.test.data(), data.test.data() + 60), test[0].pixels);
}

TEST(PrepareImages, MixedSizesOrChannelsAreRefusedNamingTheFile) {
  TempDir dir("prepmixed");
  write_folder(dir, "src", test_images(6, 4, 4, 1), "a");
  write_png(dir / "src/b_odd.png", test_images(1, 4, 5, 1)[0]);
  std::string error = error_of([&] { prepare_dataset(options(dir / "src", dir / "set")); });
  EXPECT_TRUE(contains(error, "b_odd.png") && contains(error, "4x5x1")) << error;
  EXPECT_FALSE(fs::exists(dir / "set"));
  write_png(dir / "src/b_odd.png", test_images(1, 4, 4, 3)[0]);
  error = error_of([&] { prepare_dataset(options(dir / "src", dir / "set")); });
  EXPECT_TRUE(contains(error, "b_odd.png") && contains(error, "4x4x3")) << error;
}

TEST(PrepareImages, SeededSplitIsDeterministicAndBadFilesAreSkippedWhenAsked) {
  TempDir dir("prepseed");
  write_folder(dir, "src/all", test_images(40, 3, 3, 1), "x");
  PrepareOptions o = options(dir / "src", dir / "a");
  const PrepareResult a = prepare_dataset(o);
  EXPECT_EQ(a.index.images, (std::array<int64_t, 3>{36, 2, 2}));
  o.out = dir / "b";
  prepare_dataset(o);
  EXPECT_EQ(testing_support::read_bytes(dir / "a/tokens.bin"), testing_support::read_bytes(dir / "b/tokens.bin"));
  EXPECT_EQ(testing_support::read_bytes(dir / "a/index.json"), testing_support::read_bytes(dir / "b/index.json"));
  o.out = dir / "c";
  o.seed = 2;
  prepare_dataset(o);
  EXPECT_NE(testing_support::read_bytes(dir / "a/tokens.bin"), testing_support::read_bytes(dir / "c/tokens.bin"));
  testing_support::write_bytes(dir / "src/all/x5.png", std::vector<char>(100, 'q'));
  o.out = dir / "d";
  EXPECT_TRUE(contains(error_of([&] { prepare_dataset(o); }), "x5.png"));
  o.skip_bad = true;
  EXPECT_EQ(prepare_dataset(o).skipped, 1);
  // --force with a bad source keeps the good set.
  o.skip_bad = false;
  o.force = true;
  o.out = dir / "a";
  EXPECT_NE(error_of([&] { prepare_dataset(o); }), "");
  EXPECT_EQ(load_dataset("prepared", dir / "a").train.records(), 36);
}

// An RGBA PNG through libpng's simplified writer (io/png.h writes grey and RGB only).
void write_rgba(const std::string& path, const std::vector<uint8_t>& rgba, int width, int height) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGBA;
  ASSERT_NE(png_image_write_to_file(&image, path.c_str(), 0, rgba.data(), 0, nullptr), 0);
}

TEST(ImageDecode, OpaqueAlphaIsDroppedTransparencyAndGarbageRefused) {
  TempDir dir("decode");
  std::vector<uint8_t> rgba = {1, 2, 3, 255, 4, 5, 6, 255};
  write_rgba(dir / "opaque.png", rgba, 2, 1);
  const auto decode = [&](const std::string& name) {
    const std::vector<char> bytes = testing_support::read_bytes(dir / name);
    return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size()), name, 1000);
  };
  const Image opaque = decode("opaque.png");
  EXPECT_EQ(opaque.channels, 3);
  EXPECT_EQ(opaque.pixels, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  rgba[7] = 10;
  write_rgba(dir / "clear.png", rgba, 2, 1);
  EXPECT_TRUE(contains(error_of([&] { decode("clear.png"); }), "transparent"));
  write_png(dir / "big.png", test_images(1, 40, 40, 1)[0]);
  EXPECT_TRUE(contains(error_of([&] { decode("big.png"); }), "more than the 1000"));
  std::vector<char> cut = testing_support::read_bytes(dir / "opaque.png");
  cut.resize(cut.size() / 2);
  testing_support::write_bytes(dir / "cut.png", cut);
  EXPECT_TRUE(contains(error_of([&] { decode("cut.png"); }), "cut.png"));
  testing_support::write_bytes(dir / "text.png", {'h', 'i'});
  EXPECT_TRUE(contains(error_of([&] { decode("text.png"); }), "not a PNG or JPEG"));
}

TEST(ImageDecode, JpegGreyAndRgbRoundTripAndTruncationIsAnError) {
  if (!jpeg_available()) GTEST_SKIP() << "built without libjpeg";
  TempDir dir("jpeg");
  for (int channels : {1, 3}) {
    Image flat{8, 6, channels, std::vector<uint8_t>(static_cast<size_t>(8 * 6 * channels), 120)};
    write_jpeg(dir / "f.jpg", flat, 95);
    const std::vector<char> bytes = testing_support::read_bytes(dir / "f.jpg");
    const Image back =
        decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size()), "f.jpg", 1000);
    EXPECT_EQ(back.width, 8);
    EXPECT_EQ(back.height, 6);
    EXPECT_EQ(back.channels, channels);
    for (uint8_t v : back.pixels) EXPECT_NEAR(v, 120, 2);
    const std::string error = error_of([&] {
      decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size()) / 2, "f.jpg", 1000);
    });
    EXPECT_TRUE(contains(error, "f.jpg")) << error;
  }
  // A folder of JPEGs prepares to what libjpeg decodes.
  fs::create_directories(dir / "src");
  const std::vector<Image> images = test_images(20, 8, 8, 3);
  for (size_t k = 0; k < images.size(); ++k) write_jpeg(dir / ("src/" + std::to_string(k) + ".jpeg"), images[k], 90);
  const PrepareResult r = prepare_dataset(options(dir / "src", dir / "set"));
  EXPECT_EQ(r.index.image, (ImageShape{8, 8, 3}));
  EXPECT_EQ(r.index.total_tokens, 20 * 192);
}

TEST(PrepareImages, TarOfAFolderGivesTheFolderSetAndDamageIsRefused) {
  if (std::system("tar --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no tar program";
  TempDir dir("preptar");
  write_folder(dir, "src/train", test_images(13, 4, 4, 3), "a");
  write_folder(dir, "src/val", test_images(2, 4, 4, 3, 1), "b");
  ASSERT_EQ(std::system(("tar -cf '" + (dir / "pics.tar") + "' -C '" + (dir / "src") + "' .").c_str()), 0);
  prepare_dataset(options(dir / "src", dir / "folder"));
  PrepareOptions o = options(dir / "pics.tar", dir / "tar");
  EXPECT_EQ(prepare_modality(o), "image");
  prepare_dataset(o);
  EXPECT_EQ(testing_support::read_bytes(dir / "folder/tokens.bin"), testing_support::read_bytes(dir / "tar/tokens.bin"));
  EXPECT_EQ(testing_support::read_bytes(dir / "folder/index.json"), testing_support::read_bytes(dir / "tar/index.json"));
  std::vector<char> bytes = testing_support::read_bytes(dir / "pics.tar");
  const auto tar_error = [&](const std::vector<char>& b) {
    return error_of([&] { list_tar(reinterpret_cast<const uint8_t*>(b.data()), static_cast<int64_t>(b.size()), "p.tar"); });
  };
  EXPECT_EQ(tar_error(bytes), "");
  std::vector<char> flipped = bytes;
  flipped[10] ^= 1;  // inside the first header's name
  EXPECT_TRUE(contains(tar_error(flipped), "checksum")) << tar_error(flipped);
  EXPECT_TRUE(contains(tar_error(std::vector<char>(bytes.begin(), bytes.begin() + 700)), "p.tar"));
  EXPECT_TRUE(contains(tar_error({'\x1f', '\x8b', 8, 0}), "gzip"));
}

// ---- the image index ----

TEST(PreparedImageIndex, ForgedIndexesAreRefusedNamingTheFile) {
  TempDir dir("prepidx");
  write_folder(dir, "src", test_images(20, 3, 2, 3), "i");
  prepare_dataset(options(dir / "src", dir / "set"));
  nlohmann::json index;
  std::ifstream(dir / "set/index.json") >> index;
  const std::vector<std::function<void(nlohmann::json&)>> forgeries = {
      [](nlohmann::json& j) { j["image"]["channels"] = 2; },
      [](nlohmann::json& j) { j["image"]["height"] = 0; },
      [](nlohmann::json& j) { j["image"]["width"] = 2.0; },
      [](nlohmann::json& j) { j["image"]["height"] = 70000; },
      [](nlohmann::json& j) { j["splits"]["train"]["images"] = int64_t{1} << 60; },
      [](nlohmann::json& j) { j["splits"]["valid"]["images"] = -1; },
      [](nlohmann::json& j) { j["splits"]["test"]["tokens"] = 1; },
      [](nlohmann::json& j) { j["total_tokens"] = j["total_tokens"].get<int64_t>() + 18; },
      [](nlohmann::json& j) { j["encoding"] = "mulaw8"; },
      [](nlohmann::json& j) { j["sample_rate"] = 8000; },
      [](nlohmann::json& j) { j.erase("image"); },
      [](nlohmann::json& j) { j["clips"] = nlohmann::json::array(); },
  };
  for (size_t k = 0; k < forgeries.size(); ++k) {
    nlohmann::json forged = index;
    forgeries[k](forged);
    std::ofstream(dir / "set/index.json", std::ios::trunc) << forged.dump();
    const std::string error = error_of([&] { load_dataset("prepared", dir / "set"); });
    EXPECT_TRUE(contains(error, "index.json")) << "forgery " << k << ": " << error;
  }
  std::ofstream(dir / "set/index.json", std::ios::trunc) << index.dump();
  EXPECT_EQ(load_dataset("prepared", dir / "set").train.records(), 18);
}

}  // namespace
}  // namespace spt

namespace spt {
namespace {

// ---- through the built binary ----

TEST(PrepareImagesCli, DetectedFolderPreparesTrainsAndEvaluates) {
  TempDir dir("prepimgcli");
  write_folder(dir, "pics/train", test_images(26, 4, 4, 1), "p");
  write_folder(dir, "pics/val", test_images(3, 4, 4, 1, 2), "v");
  const auto spt = [&](const std::string& args) { return testing_support::run_spt(dir.path(), args); };
  auto r = spt("prepare " + (dir / "pics") + " --out " + (dir / "set"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "29/29 images")) << r.err;
  EXPECT_TRUE(contains(r.out, "4x4x1 images") && contains(r.out, "--ctx 16 --pos-sizes 4,4,1")) << r.out;
  r = spt("prepare " + (dir / "pics") + " --out " + (dir / "set"));
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "--force")) << r.err;
  r = spt("train --layers 1 --width 16 --heads 2 --ctx 16 --stride 4 --pos-sizes 4,4,1 --batch 2 --steps 1 "
          "--eval-batches 1 --data " + (dir / "set") + " --out " + (dir / "run"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = spt("eval --checkpoint " + (dir / "run/checkpoint") + " --split test");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "over 48 tokens")) << r.out;
  r = spt("prepare --modality image " + (dir / "nothing.tar") + " --out " + (dir / "x"));
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "nothing.tar")) << r.err;
}

}  // namespace
}  // namespace spt
