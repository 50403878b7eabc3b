#include "io/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "core/error.h"

namespace spt {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

InputFile::InputFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  SPT_CHECK(fd_ >= 0, "cannot read '", path, "': ", std::strerror(errno));
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    const int error = errno;
    ::close(fd_);
    throw Error(message("cannot read '", path, "': ", std::strerror(error)));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw Error(message("cannot read '", path, "': it is ", kind_of(info.st_mode), ", expected a regular file"));
  }
  size_ = static_cast<int64_t>(info.st_size);
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

int InputFile::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void InputFile::read_exact(void* data, int64_t bytes) {
  auto* out = static_cast<char*>(data);
  int64_t done = 0;
  while (done < bytes) {
    const ssize_t got = ::read(fd_, out + done, static_cast<size_t>(std::min<int64_t>(bytes - done, 1 << 30)));
    if (got < 0 && errno == EINTR) continue;
    SPT_CHECK(got >= 0, "cannot read '", path_, "': ", std::strerror(errno));
    SPT_CHECK(got > 0, "cannot read '", path_, "': it ended after ", done, " of ", bytes,
              " bytes (was it changed while spt read it?)");
    done += got;
  }
}

std::string read_text_file(const std::string& path) {
  InputFile file(path);
  SPT_CHECK(file.size() <= physical_memory_bytes(), "cannot read '", path, "': its ", file.size(),
            " bytes exceed this machine's memory");
  std::string text(static_cast<size_t>(file.size()), '\0');
  file.read_exact(text.data(), file.size());
  return text;
}

int64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return INT64_MAX;  // unknown: no bound beyond the allocator's
  return static_cast<int64_t>(pages) * page_size;
}

}  // namespace spt
