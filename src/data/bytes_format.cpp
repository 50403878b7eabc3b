#include "core/error.h"
#include "data/file_read.h"
#include "data/formats.h"

namespace spt {

Dataset load_bytes(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  SPT_CHECK(!bytes.empty(), "bytes: '", path, "' is empty; expected a file of training bytes");
  const int64_t n = static_cast<int64_t>(bytes.size());
  // Integer arithmetic gives floor(n * 0.9) and floor(n * 0.95) exactly for any size.
  const int64_t train_end = n / 10 * 9 + n % 10 * 9 / 10;
  const int64_t valid_end = n / 20 * 19 + n % 20 * 19 / 20;
  Dataset data;
  data.format = "bytes";
  data.path = path;
  data.train.name = "train";
  data.valid.name = "valid";
  data.test.name = "test";
  data.valid.tokens.assign(bytes.begin() + train_end, bytes.begin() + valid_end);
  data.test.tokens.assign(bytes.begin() + valid_end, bytes.end());
  bytes.resize(static_cast<size_t>(train_end));
  data.train.tokens = std::move(bytes);
  return data;
}

}  // namespace spt
