// Bytes read front to back from a file or from one member of a zip archive (a NumPy
// .npz), so that a 1.5 GB array is streamed rather than held. libzip is optional in
// the build (SPT_HAVE_LIBZIP); without it opening a zip member is an error saying so.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace spt {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // "FILE" or "FILE:MEMBER", for error messages.
  virtual const std::string& name() const = 0;
  // The bytes it holds: a file's size, a zip member's declared uncompressed size.
  virtual int64_t size() const = 0;
  // The next `bytes` bytes; fewer left, or a read or decompression error, is an Error
  // naming the source.
  virtual void read_exact(void* data, int64_t bytes) = 0;
  // Checks that nothing follows what was read (a zip member's CRC-32 is checked here).
  virtual void check_end() = 0;
};

// A regular file (io/input_file.h's rules: a FIFO or device is refused).
std::unique_ptr<ByteSource> open_file_source(const std::string& path);

// Member `member` of the zip archive `path`; a missing member, a corrupt archive or a
// build without libzip is an error naming the archive.
std::unique_ptr<ByteSource> open_zip_member(const std::string& path, const std::string& member);

// True when this build reads zip archives (it links libzip).
bool zip_reading_available();

}  // namespace spt
