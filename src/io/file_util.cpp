#include "io/file_util.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "io/input_file.h"

namespace spt {
namespace {

std::string system_reason() { return std::strerror(errno); }

// Writes all of `bytes`, retrying short writes and EINTR; false with errno set on failure.
bool write_all(int fd, const char* p, int64_t bytes) {
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, static_cast<size_t>(std::min<int64_t>(bytes, int64_t{1} << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    p += n;
    bytes -= n;
  }
  return true;
}

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
  SPT_CHECK(write_all(fd_, p, bytes), "cannot write '", path_, "': ", system_reason(), " (is the disk full?)");
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

AppendFile::AppendFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  SPT_CHECK(fd_ >= 0, "cannot open '", path, "' for appending: ", system_reason());
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::write(const std::string& text) {
  SPT_CHECK(write_all(fd_, text.data(), static_cast<int64_t>(text.size())), "cannot write '", path_, "': ",
            system_reason(), " (is the disk full?)");
}

uint32_t file_crc32(const std::string& path) {
  InputFile file(path);
  std::vector<char> buffer(size_t{1} << 20);
  uint32_t crc = 0;
  for (int64_t left = file.size(); left > 0;) {
    const int64_t n = std::min<int64_t>(left, static_cast<int64_t>(buffer.size()));
    file.read_exact(buffer.data(), n);
    crc = crc32_update(crc, buffer.data(), n);
    left -= n;
  }
  return crc;
}

}  // namespace spt
