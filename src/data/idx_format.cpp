#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "data/file_read.h"
#include "data/formats.h"
#include "io/input_file.h"

namespace spt {
namespace {

constexpr uint32_t kIdxUbyte3 = 0x00000803;  // IDX magic: unsigned bytes, 3 dimensions
constexpr int64_t kIdxHeader = 16;           // magic and three int32 dimensions

const char* const kTrainName = "train-images-idx3-ubyte";
const char* const kTestName = "t10k-images-idx3-ubyte";

std::string expected_files_hint() {
  return message("an idx directory holds ", kTrainName, " and ", kTestName,
                 ", each plain or with a .gz suffix (Fashion-MNIST: apt-get install -y "
                 "dataset-fashion-mnist, then --data /usr/share/datasets/fashion-mnist)");
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct IdxImages {
  std::string path;
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // (count, rows, cols)
};

// The plain file if present, else the .gz one.
std::string find_idx_file(const std::string& directory, const std::string& name) {
  const std::string plain = (std::filesystem::path(directory) / name).string();
  if (file_exists(plain)) return plain;
  const std::string gz = plain + ".gz";
  if (file_exists(gz)) return gz;
  throw Error(message("idx: neither '", plain, "' nor '", gz, "' exists; ", expected_files_hint()));
}

// The header's dimensions, checked, into `images`; returns the file size they imply.
int64_t parse_idx_header(const std::vector<uint8_t>& bytes, IdxImages& images) {
  const std::string& path = images.path;
  const int64_t found = static_cast<int64_t>(bytes.size());
  SPT_CHECK(found >= kIdxHeader, "idx: '", path, "' holds ", found, " bytes, fewer than the ", kIdxHeader,
            "-byte IDX header");
  const uint32_t magic = big_endian_u32(bytes.data());
  SPT_CHECK(magic == kIdxUbyte3, "idx: '", path, "' has magic 0x", std::hex, magic,
            ", expected 0x00000803 (unsigned bytes, 3 dimensions: an images file, not labels)");
  int64_t dims[3];
  for (int k = 0; k < 3; ++k) {
    // Dimensions are signed int32 in the format; a top bit set is a negative size.
    dims[k] = static_cast<int32_t>(big_endian_u32(bytes.data() + 4 + 4 * k));
    SPT_CHECK(dims[k] > 0, "idx: '", path, "' has dimension ", k, " = ", dims[k], ", expected > 0");
  }
  images.count = dims[0];
  images.rows = dims[1];
  images.cols = dims[2];
  const int64_t per_image = images.rows * images.cols;  // < 2^62: each factor < 2^31
  SPT_CHECK(images.count <= (INT64_MAX - kIdxHeader) / per_image, "idx: '", path, "' has dimensions ", images.count,
            " x ", images.rows, " x ", images.cols, ", too large for any file");
  return kIdxHeader + images.count * per_image;
}

// A .gz file is inflated only up to the size its header declares: a small file that
// inflates to gigabytes is refused once it passes that size, never held whole.
IdxImages read_idx_images(const std::string& path) {
  const bool gzipped = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  IdxImages images;
  images.path = path;
  int64_t expected = 0;
  std::vector<uint8_t> bytes;
  if (gzipped) {
    expected = parse_idx_header(read_gzip_prefix(path, kIdxHeader), images);
    const int64_t compressed = file_size(path);
    SPT_CHECK(expected <= max_inflated_bytes(compressed), "idx: '", path, "' declares ", images.count, " x ",
              images.rows, " x ", images.cols, " pixels, more than its ", compressed, " compressed bytes can hold");
    bytes = read_gzip_bytes(path, expected);
  } else {
    bytes = read_file_bytes(path);
    expected = parse_idx_header(bytes, images);
  }
  const int64_t found = static_cast<int64_t>(bytes.size());
  SPT_CHECK(found == expected, "idx: '", path, "' holds ", found, " bytes, expected ", expected, " (16-byte header + ",
            images.count, " x ", images.rows, " x ", images.cols, " pixels)",
            found < expected ? ": the file is truncated" : ": trailing bytes after the images");
  bytes.erase(bytes.begin(), bytes.begin() + kIdxHeader);
  images.pixels = std::move(bytes);
  return images;
}

}  // namespace

Dataset load_idx(const std::string& directory) {
  std::error_code ec;
  SPT_CHECK(std::filesystem::is_directory(directory, ec), "idx: '", directory, "' is not a directory; ",
            expected_files_hint());
  IdxImages train = read_idx_images(find_idx_file(directory, kTrainName));
  IdxImages test = read_idx_images(find_idx_file(directory, kTestName));
  SPT_CHECK(train.rows == test.rows && train.cols == test.cols, "idx: '", train.path, "' holds ", train.rows, "x",
            train.cols, " images but '", test.path, "' holds ", test.rows, "x", test.cols,
            "; both must come from the same data set");
  Dataset data;
  data.format = "idx";
  data.path = directory;
  data.rows = static_cast<int>(train.rows);
  data.cols = static_cast<int>(train.cols);
  data.channels = 1;
  const int64_t record_size = train.rows * train.cols;
  data.train = {"train", std::move(train.pixels), record_size};
  data.valid = {"valid", {}, record_size};
  data.test = {"test", std::move(test.pixels), record_size};
  hold_out_validation(data.train, data.valid, train.path);
  return data;
}

}  // namespace spt
