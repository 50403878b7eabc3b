// Whole-file reads for the data loaders: every failure is an spt::Error naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt {

// The bytes of a file, read in one go; a file that cannot be opened or read is an error.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// The decompressed bytes of a gzip file, read through zlib; a corrupt or truncated
// gzip stream is an error.
std::vector<uint8_t> read_gzip_bytes(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace spt
