#include "files.h"

#include <zlib.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace spt::fuzz {

namespace fs = std::filesystem;

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void write_text(const std::string& path, const std::string& text) { write_file(path, Bytes(text.begin(), text.end())); }

void copy_tree(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

uint32_t crc32_of(const Bytes& bytes) {
  return static_cast<uint32_t>(::crc32(0L, bytes.data(), static_cast<uInt>(bytes.size())));
}

Bytes gzip(const Bytes& bytes) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&z, bytes.size()) + 64);
  z.next_in = const_cast<Bytef*>(bytes.data());
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

bool gunzip_file(const std::string& path, int64_t limit, Bytes& out) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return false;
  out.clear();
  Bytes chunk(1 << 16);
  bool ok = true;
  for (;;) {
    const int got = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got < 0) { ok = false; break; }
    if (got == 0) break;
    if (static_cast<int64_t>(out.size()) + got > limit) { ok = false; break; }
    out.insert(out.end(), chunk.begin(), chunk.begin() + got);
  }
  int code = Z_OK;
  gzerror(file, &code);
  if (code != Z_OK && code != Z_STREAM_END) ok = false;
  gzclose(file);
  return ok;
}

void write_gzip_bomb(const std::string& path, const Bytes& prefix, int64_t zeros) {
  gzFile file = gzopen(path.c_str(), "wb9");
  if (file == nullptr) throw std::runtime_error("cannot write " + path);
  gzwrite(file, prefix.data(), static_cast<unsigned>(prefix.size()));
  const Bytes block(1 << 20, 0);
  for (int64_t left = zeros; left > 0; left -= static_cast<int64_t>(block.size()))
    gzwrite(file, block.data(), static_cast<unsigned>(std::min<int64_t>(left, static_cast<int64_t>(block.size()))));
  gzclose(file);
}

std::vector<std::string> changed_tokens(const Bytes& before, const Bytes& after) {
  const auto inside = [&](size_t k) {
    const char ch = static_cast<char>(after[k]);
    return !std::isspace(static_cast<unsigned char>(ch)) && std::string("\"{}[]:,").find(ch) == std::string::npos;
  };
  std::vector<std::string> tokens;
  for (size_t at = 0; at < std::min(before.size(), after.size()); ++at) {
    if (before[at] == after[at] || !inside(at)) continue;
    size_t begin = at, end = at;
    while (begin > 0 && inside(begin - 1)) --begin;
    while (end < after.size() && inside(end)) ++end;
    tokens.emplace_back(after.begin() + static_cast<int64_t>(begin), after.begin() + static_cast<int64_t>(end));
  }
  return tokens;
}

std::string flip_bits(Bytes& bytes, int64_t begin, int64_t end, int count, Rng& rng) {
  std::string where;
  for (int i = 0; i < count && end > begin; ++i) {
    const int64_t offset = rng.range(begin, end - 1);
    const int bit = static_cast<int>(rng.below(8));
    bytes[static_cast<size_t>(offset)] ^= static_cast<uint8_t>(1u << bit);
    if (!where.empty()) where += ',';
    where += std::to_string(offset);
    where += ':';
    where += std::to_string(bit);
  }
  return "bits flipped at byte:bit " + where;
}

}  // namespace spt::fuzz
