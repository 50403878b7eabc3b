#include "io/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace spt {
namespace {

std::string system_reason() { return std::strerror(errno); }

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, int64_t bytes) {
  const auto* p = static_cast<const Bytef*>(data);
  // zlib takes a 32-bit length: feed it in pieces.
  constexpr int64_t kPiece = int64_t{1} << 30;
  uLong value = crc;
  while (bytes > 0) {
    const int64_t n = std::min(bytes, kPiece);
    value = ::crc32(value, p, static_cast<uInt>(n));
    p += n;
    bytes -= n;
  }
  return static_cast<uint32_t>(value);
}

OutputFile::OutputFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SPT_CHECK(fd_ >= 0, "cannot create '", path, "': ", system_reason());
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::write(const void* data, int64_t bytes) {
  SPT_CHECK(fd_ >= 0, "'", path_, "' is already closed");
  const auto* p = static_cast<const char*>(data);
  crc_ = crc32_update(crc_, p, bytes);
  int64_t left = bytes;
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, static_cast<size_t>(std::min<int64_t>(left, int64_t{1} << 30)));
    if (n < 0 && errno == EINTR) continue;
    SPT_CHECK(n > 0, "cannot write '", path_, "': ", n < 0 ? system_reason() : std::string("no progress"),
              " (is the disk full?)");
    p += n;
    left -= n;
  }
  bytes_ += bytes;
}

void OutputFile::sync_and_close() {
  SPT_CHECK(fd_ >= 0, "'", path_, "' is already closed");
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    const std::string reason = system_reason();
    ::close(fd);
    throw Error(message("cannot fsync '", path_, "': ", reason));
  }
  SPT_CHECK(::close(fd) == 0, "cannot close '", path_, "': ", system_reason());
}

void sync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  SPT_CHECK(fd >= 0, "cannot open the directory '", path, "' to fsync it: ", system_reason());
  const int result = ::fsync(fd);
  const std::string reason = result != 0 ? system_reason() : std::string();
  ::close(fd);
  SPT_CHECK(result == 0, "cannot fsync the directory '", path, "': ", reason);
}

std::string parent_directory(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const size_t slash = trimmed.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return trimmed.substr(0, slash);
}

void write_file_atomically(const std::string& path, const std::function<void(OutputFile&)>& fill) {
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  try {
    OutputFile out(temp);
    fill(out);
    out.sync_and_close();
    SPT_CHECK(::rename(temp.c_str(), path.c_str()) == 0, "cannot rename '", temp, "' to '", path,
              "': ", system_reason());
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  sync_directory(parent_directory(path));
}

int64_t file_size(const std::string& path) {
  struct stat info {};
  SPT_CHECK(::stat(path.c_str(), &info) == 0, "cannot read '", path, "': ", system_reason());
  SPT_CHECK(S_ISREG(info.st_mode), "'", path, "' is not a regular file");
  return static_cast<int64_t>(info.st_size);
}

uint32_t file_crc32(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  SPT_CHECK(file != nullptr, "cannot read '", path, "': ", system_reason());
  std::vector<char> buffer(size_t{1} << 20);
  uint32_t crc = 0;
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) crc = crc32_update(crc, buffer.data(), n);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  SPT_CHECK(!failed, "cannot read '", path, "': I/O error");
  return crc;
}

}  // namespace spt
