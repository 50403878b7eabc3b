// Durable file writing: files are written in full, fsynced, and only then renamed
// into place, so a reader sees either the old file or the complete new one, never a
// partial one, even after a crash or a power loss.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace spt {

// A file opened for writing that tracks its size and CRC-32 as bytes go out. Every
// failure throws spt::Error naming the path and the system's reason.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path);  // creates or truncates
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, int64_t bytes);
  // Flushes the data to the storage device (fsync) and closes the file.
  void sync_and_close();

  const std::string& path() const { return path_; }
  int64_t bytes_written() const { return bytes_; }
  uint32_t crc32() const { return crc_; }

 private:
  std::string path_;
  int fd_ = -1;
  int64_t bytes_ = 0;
  uint32_t crc_ = 0;
};

// Writes `path` through `fill` into a temporary sibling (path + ".tmp-<pid>"), fsyncs
// it, renames it over `path` and fsyncs the directory. On any failure the temporary
// file is removed and `path` is left as it was.
void write_file_atomically(const std::string& path, const std::function<void(OutputFile&)>& fill);

// fsync of a directory, so that renames and new entries in it are durable.
void sync_directory(const std::string& path);

// The directory holding `path` ("." for a bare name).
std::string parent_directory(const std::string& path);

// A file opened for appending lines (a log). Every write is checked: a failure (disk
// full, I/O error) throws "cannot write 'PATH': reason" instead of being dropped.
class AppendFile {
 public:
  explicit AppendFile(const std::string& path);  // creates it when missing
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  void write(const std::string& text);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// zlib's CRC-32 of a whole file.
uint32_t file_crc32(const std::string& path);

// zlib's CRC-32 continued over more bytes (start from 0).
uint32_t crc32_update(uint32_t crc, const void* data, int64_t bytes);

}  // namespace spt
