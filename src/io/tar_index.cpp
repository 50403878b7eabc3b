#include "io/tar_index.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace spt {
namespace {

constexpr int64_t kBlock = 512;

std::string text_field(const uint8_t* header, int at, int length) {
  const auto* start = reinterpret_cast<const char*>(header + at);
  return std::string(start, strnlen(start, static_cast<size_t>(length)));
}

// An octal field: optional leading spaces, digits, then NUL or space.
int64_t octal_field(const uint8_t* header, int at, int length, const std::string& where, const char* what) {
  SPT_CHECK(!(header[at] & 0x80), where, ": tar ", what, " in base-256 (a member over 8 GiB) is not supported");
  int k = 0;
  while (k < length && header[at + k] == ' ') ++k;
  int64_t value = 0;
  int digits = 0;
  for (; k < length && header[at + k] >= '0' && header[at + k] <= '7'; ++k, ++digits)
    value = value * 8 + (header[at + k] - '0');
  for (; k < length; ++k)
    SPT_CHECK(header[at + k] == 0 || header[at + k] == ' ', where, ": tar ", what, " field is not an octal number");
  SPT_CHECK(digits > 0, where, ": tar ", what, " field holds no digits");
  return value;
}

bool all_zero(const uint8_t* block) {
  return std::all_of(block, block + kBlock, [](uint8_t b) { return b == 0; });
}

void check_header(const uint8_t* header, const std::string& where) {
  int64_t sum = 0;
  for (int k = 0; k < kBlock; ++k) sum += (k >= 148 && k < 156) ? ' ' : header[k];
  const int64_t recorded = octal_field(header, 148, 8, where, "checksum");
  SPT_CHECK(sum == recorded, where, ": tar header checksum ", recorded, " differs from its bytes' ", sum,
            " (a damaged archive, or not a tar file)");
  const bool posix = std::memcmp(header + 257, "ustar\0", 6) == 0;
  const bool gnu = std::memcmp(header + 257, "ustar  \0", 8) == 0;
  SPT_CHECK(posix || gnu, where, ": tar header without the ustar magic (a pre-POSIX tar; recreate it with tar -H ustar)");
}

// The "path" of a pax extended header ("LENGTH key=value\n" records); "" when it has none.
std::string pax_path(const uint8_t* data, int64_t size, const std::string& where) {
  std::string path;
  for (int64_t at = 0; at < size;) {
    int64_t length = 0, k = at;
    while (k < size && data[k] >= '0' && data[k] <= '9' && length < kBlock * 1024) length = length * 10 + (data[k++] - '0');
    SPT_CHECK(k < size && data[k] == ' ' && length > k - at + 1 && at + length <= size && data[at + length - 1] == '\n',
              where, ": a pax record at byte ", at, " of its extended header is malformed");
    const std::string record(reinterpret_cast<const char*>(data + k + 1), static_cast<size_t>(at + length - k - 2));
    if (record.rfind("path=", 0) == 0) path = record.substr(5);
    at += length;
  }
  return path;
}

}  // namespace

std::vector<TarMember> list_tar(const uint8_t* bytes, int64_t size, const std::string& where) {
  SPT_CHECK(!(size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b), where,
            ": a gzip-compressed archive; unpack it first (gunzip, or tar -xzf into a directory)");
  std::vector<TarMember> members;
  std::string long_name;
  for (int64_t at = 0;;) {
    SPT_CHECK(size - at >= kBlock, where, ": the tar archive ends inside a header at byte ", at, " (truncated?)");
    const uint8_t* header = bytes + at;
    if (all_zero(header)) break;  // the end-of-archive marker
    const std::string here = message(where, " (member header at byte ", at, ")");
    check_header(header, here);
    const int64_t length = octal_field(header, 124, 12, here, "size");
    const int64_t data = at + kBlock;
    SPT_CHECK(length <= size - data, here, ": a member of ", length, " bytes runs past the archive's end at ", size);
    const char type = static_cast<char>(header[156]);
    std::string name = text_field(header, 0, 100);
    const std::string prefix = std::memcmp(header + 257, "ustar\0", 6) == 0 ? text_field(header, 345, 155) : "";
    if (!prefix.empty()) name = prefix + "/" + name;
    const auto* text = reinterpret_cast<const char*>(bytes + data);
    if (type == 'L') long_name = std::string(text, strnlen(text, static_cast<size_t>(length)));
    else if (type == 'x') long_name = pax_path(bytes + data, length, here);
    else {
      SPT_CHECK(type != 'S', here, ": sparse member '", name, "' is not supported");
      if (type == '0' || type == '\0' || type == '7')
        members.push_back({long_name.empty() ? name : long_name, data, length});
      long_name.clear();
    }
    at = data + (length + kBlock - 1) / kBlock * kBlock;
    if (at >= size) break;  // a tar without the end marker: tolerated, as tar does
  }
  return members;
}

}  // namespace spt
