#include "core/error.h"
#include "data/file_read.h"
#include "data/formats.h"

namespace spt {

StreamSplit enwik8_split(int64_t n) {
  // Integer arithmetic gives floor(n * 0.9) and floor(n * 0.95) exactly for any size.
  return {n / 10 * 9 + n % 10 * 9 / 10, n / 20 * 19 + n % 20 * 19 / 20};
}

Dataset load_bytes(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  SPT_CHECK(!bytes.empty(), "bytes: '", path, "' is empty; expected a file of training bytes");
  const int64_t n = static_cast<int64_t>(bytes.size());
  const auto [train_end, valid_end] = enwik8_split(n);
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
