#include "data/file_read.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "io/input_file.h"

namespace spt {
namespace {

using GzipFile = std::unique_ptr<gzFile_s, int (*)(gzFile)>;

GzipFile open_gzip(const std::string& path) {
  InputFile file(path);
  const int fd = file.release();
  GzipFile gz(gzdopen(fd, "rb"), &gzclose);
  if (!gz) {
    ::close(fd);
    throw Error(message("cannot read '", path, "': zlib could not open it"));
  }
  gzbuffer(gz.get(), 1 << 20);
  return gz;
}

// Inflates up to `count` more bytes onto the end of `bytes`; returns how many came.
int64_t inflate_into(gzFile gz, const std::string& path, int64_t count, std::vector<uint8_t>& bytes) {
  constexpr int64_t kChunk = int64_t{1} << 24;
  int64_t total = 0;
  while (total < count) {
    const int64_t want = std::min(kChunk, count - total);
    const size_t used = bytes.size();
    bytes.resize(used + static_cast<size_t>(want));
    const int got = gzread(gz, bytes.data() + used, static_cast<unsigned>(want));
    if (got < 0) {
      int code = 0;
      const char* text = gzerror(gz, &code);
      throw Error(message("cannot read '", path, "': gzip error: ", text ? text : "zlib error"));
    }
    bytes.resize(used + static_cast<size_t>(got));
    total += got;
    if (got < want) break;
  }
  return total;
}

void check_stream_end(gzFile gz, const std::string& path) {
  int code = Z_OK;
  const char* text = gzerror(gz, &code);
  // zlib reports a gzip stream cut short as Z_BUF_ERROR once reading stops.
  SPT_CHECK(code == Z_OK || code == Z_STREAM_END, "cannot read '", path, "': the gzip stream is corrupt or truncated (",
            text ? text : "zlib error", ")");
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  InputFile file(path);
  check_fits_in_memory(path, file.size());
  std::vector<uint8_t> bytes(static_cast<size_t>(file.size()));
  file.read_exact(bytes.data(), file.size());
  return bytes;
}

std::vector<uint8_t> read_gzip_prefix(const std::string& path, int64_t count) {
  GzipFile gz = open_gzip(path);
  std::vector<uint8_t> bytes;
  inflate_into(gz.get(), path, count, bytes);
  check_stream_end(gz.get(), path);
  return bytes;
}

std::vector<uint8_t> read_gzip_bytes(const std::string& path, int64_t max_bytes) {
  const int64_t limit = std::min(max_bytes, memory_limit_bytes());
  GzipFile gz = open_gzip(path);
  std::vector<uint8_t> bytes;
  // One byte past the limit tells "exactly the limit" from "more than the limit".
  const int64_t got = inflate_into(gz.get(), path, limit + 1, bytes);
  SPT_CHECK(got <= limit, "cannot read '", path, "': it inflates to more than the ", limit,
            " bytes expected; stopped there");
  check_stream_end(gz.get(), path);
  return bytes;
}

int64_t max_inflated_bytes(int64_t compressed_bytes) {
  return compressed_bytes > INT64_MAX / 1032 ? INT64_MAX : compressed_bytes * 1032;
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace spt
