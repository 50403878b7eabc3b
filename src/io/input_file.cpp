#include "io/input_file.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
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

void check_regular(const std::string& path, mode_t mode) {
  SPT_CHECK(S_ISREG(mode), "cannot read '", path, "': it is ", kind_of(mode), ", expected a regular file");
}

// Fields of /proc/self/statm, in bytes: 0 the whole address space, 5 data and stack.
int64_t mapped_bytes(int field) {
  std::FILE* file = std::fopen("/proc/self/statm", "r");
  if (file == nullptr) return 0;
  long long values[6] = {};
  const int got = std::fscanf(file, "%lld %lld %lld %lld %lld %lld", &values[0], &values[1], &values[2],
                              &values[3], &values[4], &values[5]);
  std::fclose(file);
  return got == 6 ? values[field] * ::sysconf(_SC_PAGE_SIZE) : 0;
}

// What is left under a resource limit (INT64_MAX when there is none).
int64_t left_under(int resource, int statm_field) {
  rlimit limit{};
  if (::getrlimit(resource, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return INT64_MAX;
  const int64_t cap = static_cast<int64_t>(std::min<rlim_t>(limit.rlim_cur, INT64_MAX));
  return std::max<int64_t>(0, cap - mapped_bytes(statm_field));
}

}  // namespace

InputFile::InputFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  SPT_CHECK(fd_ >= 0, "cannot read '", path, "': ", std::strerror(errno));
  struct stat info {};
  const bool stat_ok = ::fstat(fd_, &info) == 0;
  const int error = errno;
  if (!stat_ok || !S_ISREG(info.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    SPT_CHECK(stat_ok, "cannot read '", path, "': ", std::strerror(error));
    check_regular(path, info.st_mode);
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

int64_t file_size(const std::string& path) {
  struct stat info {};
  SPT_CHECK(::stat(path.c_str(), &info) == 0, "cannot read '", path, "': ", std::strerror(errno));
  check_regular(path, info.st_mode);
  return static_cast<int64_t>(info.st_size);
}

std::string read_text_file(const std::string& path, int64_t max_bytes) {
  InputFile file(path);
  SPT_CHECK(file.size() <= max_bytes, "cannot read '", path, "': it is ", file.size(), " bytes, more than the ",
            max_bytes, " such a file can hold");
  check_fits_in_memory(path, file.size());
  std::string text(static_cast<size_t>(file.size()), '\0');
  file.read_exact(text.data(), file.size());
  return text;
}

void check_fits_in_memory(const std::string& path, int64_t bytes) {
  const int64_t limit = memory_limit_bytes();
  SPT_CHECK(bytes <= limit, "cannot read '", path, "': its ", bytes, " bytes exceed the ", limit,
            " bytes of memory spt may still use here (physical memory, or ulimit -v / -d when lower)");
}

int64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return INT64_MAX;  // unknown: no bound beyond the allocator's
  return static_cast<int64_t>(pages) * page_size;
}

int64_t memory_limit_bytes() {
  return std::min({physical_memory_bytes(), left_under(RLIMIT_AS, 0), left_under(RLIMIT_DATA, 5)});
}

}  // namespace spt
