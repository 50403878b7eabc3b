// A whole file mapped read-only into memory (mmap), so that large token files are
// paged in on demand rather than read up front. An empty file maps to no bytes.
#pragma once

#include <cstdint>
#include <string>

namespace spt {

class MappedFile {
 public:
  // Maps `path`; a missing or unreadable file is an error naming it and the reason.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace spt
