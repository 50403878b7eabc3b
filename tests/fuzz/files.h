// File helpers of the fuzz driver (plain POSIX and zlib; nothing of spt).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_case.h"

namespace spt::fuzz {

using Bytes = std::vector<uint8_t>;

Bytes read_file(const std::string& path);
void write_file(const std::string& path, const Bytes& bytes);
void write_text(const std::string& path, const std::string& text);
void copy_tree(const std::string& from, const std::string& to);
void remove_tree(const std::string& path);
uint32_t crc32_of(const Bytes& bytes);

Bytes gzip(const Bytes& bytes);
// Inflates like gzread (concatenated members, trailing garbage as zlib treats it); false
// when zlib reports an error or the output would exceed `limit` bytes.
bool gunzip_file(const std::string& path, int64_t limit, Bytes& out);
// A gzip file of `zeros` zero bytes after `prefix`, written in bounded memory.
void write_gzip_bomb(const std::string& path, const Bytes& prefix, int64_t zeros);

// The JSON tokens (runs of characters other than whitespace, quotes and punctuation) of
// `after` around each byte that differs from `before`: what an error may quote.
std::vector<std::string> changed_tokens(const Bytes& before, const Bytes& after);

// Flips `count` random bits in bytes [begin, end) of `bytes`; returns the offsets.
std::string flip_bits(Bytes& bytes, int64_t begin, int64_t end, int count, Rng& rng);

}  // namespace spt::fuzz
