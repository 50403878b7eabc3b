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

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

void check_regular(const std::string& path, const struct stat& info) {
  SPT_CHECK(S_ISREG(info.st_mode), "cannot read '", path, "': it is ", file_kind(info.st_mode),
            ", not a regular file");
}

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

int64_t file_size(const std::string& path) {
  struct stat info {};
  SPT_CHECK(::stat(path.c_str(), &info) == 0, "cannot read '", path, "': ", system_reason());
  check_regular(path, info);
  return static_cast<int64_t>(info.st_size);
}

std::string read_regular_file(const std::string& path, int64_t max_bytes) {
  const int64_t size = file_size(path);
  SPT_CHECK(size <= max_bytes, "cannot read '", path, "': it is ", size, " bytes, more than the ", max_bytes,
            " such a file can hold");
  // O_NONBLOCK: should the path become a FIFO after the stat, the open does not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  SPT_CHECK(fd >= 0, "cannot read '", path, "': ", system_reason());
  struct stat info {};
  const bool is_stat = ::fstat(fd, &info) == 0;
  if (!is_stat || !S_ISREG(info.st_mode) || info.st_size > max_bytes) {
    ::close(fd);
    SPT_CHECK(is_stat, "cannot read '", path, "': ", system_reason());
    check_regular(path, info);
    throw Error(message("cannot read '", path, "': it grew past ", max_bytes, " bytes while being opened"));
  }
  std::string text(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  std::string reason;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) reason = system_reason();
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  SPT_CHECK(done == text.size(), "cannot read '", path, "': ", reason.empty() ? "it shrank while being read" : reason);
  return text;
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
  file_size(path);  // a regular file: fopen of a FIFO would block
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
