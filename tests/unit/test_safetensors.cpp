// The safetensors reader and writer: round trips, the byte layout of the format, and a
// one-line error for every kind of damaged file.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/file_util.h"
#include "io/input_file.h"
#include "io/safetensors.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

using testing_support::expect_error;
using testing_support::read_bytes;
using testing_support::TempDir;
using testing_support::write_bytes;

uint64_t read_u64_le(const char* p) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return value;
}

// A file written byte by byte: a length field, the header text, then `data` bytes.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes, int64_t length_delta = 0) {
  std::string bytes(8, '\0');
  const uint64_t length = header.size() + length_delta;
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  bytes += header;
  bytes.append(data_bytes, '\x5a');
  write_bytes(path, std::vector<char>(bytes.begin(), bytes.end()));
}

struct Sample {
  std::vector<float> matrix{1.5f, -2.25f, 3.0f, 1e-30f, -0.0f, 7e20f};  // (2, 3)
  std::vector<uint8_t> bytes{0, 1, 127, 128, 255};                      // (5)
  float scalar = 42.0f;                                                 // ()
};

void write_sample(const std::string& path, const Sample& s) {
  SafetensorsWriter writer;
  writer.add_u8("bytes", {5}, s.bytes.data());  // added first: the writer must still align the floats
  writer.add_f32("matrix", {2, 3}, s.matrix.data());
  writer.add_f32("scalar", {}, &s.scalar);
  writer.add_f32("empty", {0, 4}, nullptr);
  writer.set_metadata("format", "test");
  writer.set_metadata("note", "quotes \" and unicode \xc3\xa9");
  writer.write_file(path);
}

TEST(Safetensors, RoundTripKeepsValuesShapesAndMetadata) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  const Sample s;
  write_sample(path, s);

  SafetensorsReader reader(path);
  ASSERT_EQ(reader.tensors().size(), 4u);
  EXPECT_EQ(reader.metadata().at("format"), "test");
  EXPECT_EQ(reader.metadata_value("note"), "quotes \" and unicode \xc3\xa9");
  EXPECT_EQ(reader.tensor("matrix").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(reader.tensor("bytes").dtype, Dtype::U8);
  EXPECT_TRUE(reader.tensor("scalar").shape.empty());

  std::vector<float> matrix(6);
  reader.read_f32("matrix", {2, 3}, matrix.data());
  EXPECT_EQ(std::memcmp(matrix.data(), s.matrix.data(), 6 * sizeof(float)), 0);  // bitwise, -0.0 included
  std::vector<uint8_t> bytes(5);
  reader.read("bytes", Dtype::U8, {5}, bytes.data());
  EXPECT_EQ(bytes, s.bytes);
  float scalar = 0;
  reader.read_f32("scalar", {}, &scalar);
  EXPECT_EQ(scalar, 42.0f);
  reader.read_f32("empty", {0, 4}, nullptr);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp-" + std::to_string(::getpid())));
}

TEST(Safetensors, ByteLayoutFollowsTheFormat) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  const Sample s;
  write_sample(path, s);
  const std::vector<char> file = read_bytes(path);
  ASSERT_GE(file.size(), 8u);
  const uint64_t n = read_u64_le(file.data());
  EXPECT_EQ(n % 8, 0u) << "the data section must start at a multiple of 8";
  ASSERT_LE(8 + n, file.size());
  const std::string header(file.data() + 8, n);
  const size_t json_end = header.find_last_not_of(' ') + 1;
  EXPECT_EQ(header[0], '{');
  EXPECT_EQ(header[json_end - 1], '}');
  EXPECT_LT(n - json_end, 8u) << "padding is fewer than 8 spaces";
  const nlohmann::json json = nlohmann::json::parse(header);  // spaces are legal JSON whitespace
  EXPECT_EQ(json["__metadata__"]["format"], "test");

  // Every tensor's bytes are where its data_offsets say, aligned to its element size,
  // and the tensors cover the data section with neither gap nor overlap.
  const size_t data_start = 8 + n;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& item : json.items()) {
    if (item.key() == "__metadata__") continue;
    const uint64_t begin = item.value()["data_offsets"][0], end = item.value()["data_offsets"][1];
    ranges.emplace_back(begin, end);
    if (item.value()["dtype"] == "F32") {
      EXPECT_EQ((data_start + begin) % 4, 0u) << item.key();
    }
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    EXPECT_EQ(begin, covered);
    covered = end;
  }
  EXPECT_EQ(data_start + covered, file.size());
  EXPECT_EQ(json["matrix"]["dtype"], "F32");
  EXPECT_EQ(json["matrix"]["shape"], nlohmann::json::array({2, 3}));
  const uint64_t begin = json["matrix"]["data_offsets"][0];
  EXPECT_EQ(std::memcmp(file.data() + data_start + begin, s.matrix.data(), 24), 0);
  const uint64_t u8_begin = json["bytes"]["data_offsets"][0];
  EXPECT_EQ(std::memcmp(file.data() + data_start + u8_begin, s.bytes.data(), 5), 0);
}

TEST(Safetensors, TruncatedFilesAreRefused) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  write_sample(path, Sample{});
  const std::vector<char> good = read_bytes(path);

  write_bytes(path, std::vector<char>(good.begin(), good.end() - 1));  // last data byte gone
  expect_error([&] { SafetensorsReader r(path); }, {path, "run past", "data section"});
  write_bytes(path, std::vector<char>(good.begin(), good.begin() + 5));
  expect_error([&] { SafetensorsReader r(path); }, {path, "5 bytes", "shorter than the 8-byte"});
  write_bytes(path, std::vector<char>(good.begin(), good.begin() + 20));  // inside the header
  expect_error([&] { SafetensorsReader r(path); }, {path, "header length", "runs past the end"});
  write_bytes(path, {});
  expect_error([&] { SafetensorsReader r(path); }, {path, "0 bytes"});
  expect_error([&] { SafetensorsReader r(dir / "missing.safetensors"); }, {"missing.safetensors"});
}

TEST(Safetensors, HeaderLengthBeyondTheFileIsRefused) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  write_raw(path, R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", 2, 1000);
  expect_error([&] { SafetensorsReader r(path); }, {path, "header length", "runs past the end"});
}

TEST(Safetensors, InvalidJsonIsRefused) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  write_raw(path, R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]})", 2);  // one brace short
  expect_error([&] { SafetensorsReader r(path); }, {path, "not valid JSON"});
  write_raw(path, R"([1, 2, 3])", 0);
  expect_error([&] { SafetensorsReader r(path); }, {path, "must be a JSON object"});
  write_raw(path, R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", 4);
  expect_error([&] { SafetensorsReader r(path); }, {path, "names 'a' twice"});
  write_raw(path, R"({"__metadata__":{"k":3}})", 0);
  expect_error([&] { SafetensorsReader r(path); }, {path, "__metadata__", "'k'", "must be a string"});
  write_raw(path, R"({"a":{"dtype":"U8","data_offsets":[0,2]}})", 2);
  expect_error([&] { SafetensorsReader r(path); }, {path, "tensor 'a'", "missing 'shape'"});
  write_raw(path, R"({"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}})", 2);
  expect_error([&] { SafetensorsReader r(path); }, {path, "tensor 'a'", "non-negative"});
}

TEST(Safetensors, BadOffsetsAreRefused) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  const std::string a = R"("a":{"dtype":"U8","shape":[4],"data_offsets":)";
  const std::string b = R"("b":{"dtype":"U8","shape":[4],"data_offsets":)";
  write_raw(path, "{" + a + "[0,4]}," + b + "[2,6]}}", 6);
  expect_error([&] { SafetensorsReader r(path); }, {path, "overlaps"});
  write_raw(path, "{" + a + "[0,4]}," + b + "[6,10]}}", 10);
  expect_error([&] { SafetensorsReader r(path); }, {path, "[4, 6)", "belong to no tensor"});
  write_raw(path, "{" + a + "[0,4]}," + b + "[4,8]}}", 9);
  expect_error([&] { SafetensorsReader r(path); }, {path, "9 bytes", "cover 8"});
  write_raw(path, "{" + a + "[0,4]}," + b + "[4,8]}}", 7);
  expect_error([&] { SafetensorsReader r(path); }, {path, "tensor 'b'", "run past"});
  write_raw(path, "{" + a + "[4,0]}}", 4);
  expect_error([&] { SafetensorsReader r(path); }, {path, "tensor 'a'", "end before they begin"});
  write_raw(path, "{" + a + "[0]}}", 4);
  expect_error([&] { SafetensorsReader r(path); }, {path, "tensor 'a'", "[begin, end]"});
  write_raw(path, "{" + a + "[0,-4]}}", 4);
  expect_error([&] { SafetensorsReader r(path); }, {path, "tensor 'a'", "non-negative"});
}

TEST(Safetensors, ShapeNotMatchingTheByteCountIsRefused) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  write_raw(path, R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20);
  expect_error([&] { SafetensorsReader r(path); }, {path, "tensor 'a'", "(2, 3)", "needs 24 bytes", "hold 20"});
}

TEST(Safetensors, UnknownDtypeIsRefused) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  write_raw(path, R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", 2);
  expect_error([&] { SafetensorsReader r(path); }, {path, "tensor 'a'", "unknown dtype 'Q4'"});
}

TEST(Safetensors, ReadingWithTheWrongShapeOrDtypeNamesTheTensor) {
  TempDir dir("st");
  const std::string path = dir / "a.safetensors";
  write_sample(path, Sample{});
  SafetensorsReader reader(path);
  std::vector<float> buffer(16);
  expect_error([&] { reader.read_f32("matrix", {3, 2}, buffer.data()); },
               {path, "tensor 'matrix'", "F32 (2, 3)", "expected F32 (3, 2)"});
  expect_error([&] { reader.read_f32("bytes", {5}, buffer.data()); }, {path, "tensor 'bytes'", "U8 (5)", "expected F32 (5)"});
  expect_error([&] { reader.read_f32("nothing", {1}, buffer.data()); }, {path, "no tensor named 'nothing'"});
  expect_error([&] { reader.metadata_value("absent"); }, {path, "'absent'"});
}

TEST(Safetensors, WriterRefusesBadInput) {
  SafetensorsWriter writer;
  float x = 0;
  writer.add_f32("x", {1}, &x);
  expect_error([&] { writer.add_f32("x", {1}, &x); }, {"'x'", "twice"});
  expect_error([&] { writer.add_f32("__metadata__", {1}, &x); }, {"__metadata__"});
  expect_error([&] { writer.add_f32("y", {-1}, &x); }, {"'y'", "(-1)"});
}

TEST(Safetensors, DtypeNamesAndSizes) {
  EXPECT_EQ(parse_dtype("BF16"), Dtype::BF16);
  EXPECT_EQ(dtype_size(Dtype::F64), 8);
  EXPECT_EQ(dtype_size(Dtype::U8), 1);
  EXPECT_STREQ(dtype_name(Dtype::I32), "I32");
  EXPECT_THROW(parse_dtype("f32"), Error);
}

TEST(FileUtil, Crc32MatchesTheStandardCheckValue) {
  // CRC-32 (ISO-HDLC, zlib's) of "123456789" is 0xCBF43926.
  TempDir dir("crc");
  const std::string text = "123456789";
  write_bytes(dir / "check", std::vector<char>(text.begin(), text.end()));
  EXPECT_EQ(file_crc32(dir / "check"), 0xCBF43926u);
  EXPECT_EQ(crc32_update(0, text.data(), 9), 0xCBF43926u);
  EXPECT_EQ(crc32_update(crc32_update(0, text.data(), 4), text.data() + 4, 5), 0xCBF43926u);
  EXPECT_EQ(file_size(dir / "check"), 9);
}

TEST(FileUtil, FailedAtomicWriteLeavesTheOldFile) {
  TempDir dir("atomic");
  const std::string path = dir / "f";
  write_file_atomically(path, [](OutputFile& out) { out.write("old", 3); });
  expect_error([&] {
    write_file_atomically(path, [](OutputFile& out) {
      out.write("new", 3);
      throw Error("fill failed");
    });
  }, {"fill failed"});
  const std::vector<char> kept = read_bytes(path);
  EXPECT_EQ(std::string(kept.begin(), kept.end()), "old");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1)
      << "the temporary file must be removed";
  EXPECT_EQ(parent_directory("a/b/c"), "a/b");
  EXPECT_EQ(parent_directory("c"), ".");
  EXPECT_EQ(parent_directory("/c"), "/");
  EXPECT_EQ(parent_directory("a/b/"), "a");
}

}  // namespace
}  // namespace spt
