#include <filesystem>

#include "core/error.h"
#include "data/file_read.h"
#include "data/formats.h"
#include "data/image_layout.h"
#include "io/input_file.h"

namespace spt {
namespace {

constexpr int kSide = 32;
constexpr int kChannels = 3;
constexpr int64_t kPixels = kSide * kSide * kChannels;  // 3072
constexpr int64_t kRecord = 1 + kPixels;                 // label byte, then the pixels

std::string expected_files_hint() {
  return "a cifar10 directory holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin (the binary "
         "version, cifar-10-binary.tar.gz, which unpacks to cifar-10-batches-bin/)";
}

// Appends the images of one batch file to `pixels` in raster order with the channel
// fastest: the file stores each image as 1024 red, 1024 green, then 1024 blue bytes.
void append_batch(const std::string& path, std::vector<uint8_t>& pixels) {
  SPT_CHECK(file_exists(path), "cifar10: '", path, "' does not exist; ", expected_files_hint());
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  const int64_t size = static_cast<int64_t>(bytes.size());
  SPT_CHECK(size > 0 && size % kRecord == 0, "cifar10: '", path, "' holds ", size,
            " bytes, expected a positive multiple of ", kRecord, " (1 label byte + 3072 pixels per image)");
  const int64_t images = size / kRecord;
  const size_t first = pixels.size();
  pixels.resize(first + static_cast<size_t>(images * kPixels));
  for (int64_t i = 0; i < images; ++i)
    planes_to_raster(bytes.data() + i * kRecord + 1, kSide * kSide, kChannels, pixels.data() + first + i * kPixels);
}

}  // namespace

Dataset load_cifar10(const std::string& path) {
  std::error_code ec;
  SPT_CHECK(std::filesystem::is_directory(path, ec), "cifar10: '", path, "' is not a directory; ",
            expected_files_hint());
  // The archive unpacks into cifar-10-batches-bin/; accept its parent too.
  std::filesystem::path directory(path);
  if (!file_exists((directory / "data_batch_1.bin").string()) &&
      file_exists((directory / "cifar-10-batches-bin" / "data_batch_1.bin").string()))
    directory /= "cifar-10-batches-bin";

  Dataset data;
  data.format = "cifar10";
  data.path = path;
  data.rows = kSide;
  data.cols = kSide;
  data.channels = kChannels;
  data.train = {"train", {}, kPixels};
  data.valid = {"valid", {}, kPixels};
  data.test = {"test", {}, kPixels};
  std::vector<std::string> batches;
  uintmax_t train_bytes = 0;
  for (int batch = 1; batch <= 5; ++batch) {
    batches.push_back((directory / message("data_batch_", batch, ".bin")).string());
    SPT_CHECK(file_exists(batches.back()), "cifar10: '", batches.back(), "' does not exist; ", expected_files_hint());
    train_bytes += file_size(batches.back());
  }
  check_fits_in_memory(directory.string(), static_cast<int64_t>(train_bytes));
  data.train.tokens.reserve(static_cast<size_t>(train_bytes / kRecord * kPixels));
  for (const std::string& batch : batches) append_batch(batch, data.train.tokens);
  append_batch((directory / "test_batch.bin").string(), data.test.tokens);
  hold_out_validation(data.train, data.valid, (directory / "data_batch_{1..5}.bin").string());
  return data;
}

}  // namespace spt
