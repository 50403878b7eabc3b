// Every file spt reads comes through here (data sets, checkpoints, configs, the run lock),
// because any of them may come from anywhere: a FIFO, a device or a directory given where
// a file is expected is refused at once (never blocked on), a size is checked against the
// memory this process may use before anything is allocated for it, and every failure is
// an spt::Error "cannot read 'FILE': reason".
#pragma once

#include <cstdint>
#include <string>

namespace spt {

// A regular file opened for reading; closes on destruction.
class InputFile {
 public:
  // Opens without blocking, then refuses anything but a regular file.
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }  // bytes, from fstat at open
  // Hands the descriptor over (e.g. to gzdopen); the InputFile no longer closes it.
  int release();
  // Reads exactly `bytes` bytes into `data`; a short file or a read error is an Error.
  void read_exact(void* data, int64_t bytes);

 private:
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

// Size in bytes of a regular file, checked with stat (never opened): missing, unreadable,
// or a directory, FIFO or device is "cannot read 'PATH': reason".
int64_t file_size(const std::string& path);

// The whole content of a regular file. A file over `max_bytes` (a bound the caller knows,
// such as 1 MiB for a JSON file) or over memory_limit_bytes() is refused before reading.
std::string read_text_file(const std::string& path, int64_t max_bytes = INT64_MAX);

// Throws "cannot read 'PATH': its N bytes exceed ..." when `bytes` of it cannot be held.
void check_fits_in_memory(const std::string& path, int64_t bytes);

// Physical memory of this machine in bytes (what `spt info` reports).
int64_t physical_memory_bytes();

// The most this process may allocate: physical memory, lowered by an address-space or
// data-segment limit (ulimit -v / -d) when one is set, less what is already mapped. The
// documented upper bound on what spt tries to allocate for a model, a data set or a file.
int64_t memory_limit_bytes();

}  // namespace spt
