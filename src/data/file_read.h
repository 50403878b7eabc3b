// Whole-file reads for the data loaders: every failure is an spt::Error naming the file,
// "cannot read 'FILE': reason". Only regular files are read (a FIFO or device is refused
// without blocking), and nothing larger than the machine's memory is allocated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt {

// The bytes of a file, read in one go.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// The first `count` decompressed bytes of a gzip file (fewer when it holds fewer).
std::vector<uint8_t> read_gzip_prefix(const std::string& path, int64_t count);

// The decompressed bytes of a gzip file, read through zlib. Inflating stops once the
// output passes `max_bytes` (an error: a caller that knows the expected size passes it,
// so a small file that inflates to gigabytes is refused without being held); a corrupt
// or truncated gzip stream is an error.
std::vector<uint8_t> read_gzip_bytes(const std::string& path, int64_t max_bytes);

// The most bytes deflate can inflate from a file of `compressed_bytes` (its ratio is at
// most 1032:1), for refusing a forged size before reading.
int64_t max_inflated_bytes(int64_t compressed_bytes);

bool file_exists(const std::string& path);

}  // namespace spt
