// Opening input files that may come from anywhere: a FIFO, a device or a directory
// given where a file is expected is refused at once (never blocked on), and every
// failure is an spt::Error "cannot read 'FILE': reason".
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

// The whole file as a string (for small text files such as JSON configs).
std::string read_text_file(const std::string& path);

// Physical memory of this machine in bytes: the documented upper bound on what spt
// tries to allocate for a model, a data set or a decompressed file.
int64_t physical_memory_bytes();

}  // namespace spt
