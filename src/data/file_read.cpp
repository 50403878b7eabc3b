#include "data/file_read.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"

namespace spt {

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  SPT_CHECK(!std::filesystem::is_directory(path, ec), "'", path, "' is a directory, expected a file");
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  SPT_CHECK(file, "cannot open '", path, "': ", std::strerror(errno));
  SPT_CHECK(std::fseek(file.get(), 0, SEEK_END) == 0, "cannot seek in '", path, "': ", std::strerror(errno));
  const long size = std::ftell(file.get());
  SPT_CHECK(size >= 0, "cannot tell the size of '", path, "': ", std::strerror(errno));
  std::rewind(file.get());
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  const size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), file.get());
  SPT_CHECK(got == bytes.size(), "read only ", got, " of ", bytes.size(), " bytes of '", path, "'");
  return bytes;
}

std::vector<uint8_t> read_gzip_bytes(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), &gzclose);
  SPT_CHECK(file, "cannot open '", path, "': ", std::strerror(errno));
  gzbuffer(file.get(), 1 << 20);
  std::vector<uint8_t> bytes;
  constexpr size_t kChunk = size_t{1} << 24;
  for (;;) {
    const size_t used = bytes.size();
    bytes.resize(used + kChunk);
    const int got = gzread(file.get(), bytes.data() + used, static_cast<unsigned>(kChunk));
    if (got < 0) {
      int code = 0;
      const char* text = gzerror(file.get(), &code);
      throw Error(message("cannot decompress '", path, "': ", text ? text : "zlib error"));
    }
    bytes.resize(used + static_cast<size_t>(got));
    if (static_cast<size_t>(got) < kChunk) break;
  }
  int code = Z_OK;
  const char* text = gzerror(file.get(), &code);
  // zlib reports a gzip stream cut short as Z_BUF_ERROR once reading stops.
  SPT_CHECK(code == Z_OK || code == Z_STREAM_END, "gzip stream of '", path, "' is corrupt or truncated: ",
            text ? text : "zlib error");
  return bytes;
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace spt
