#include "io/npy.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/error.h"

namespace spt {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr int64_t kMagicBytes = 6;

// A cursor over the dict literal; every error names the file and what it found.
class DictParser {
 public:
  DictParser(const std::string& text, const std::string& where) : text_(text), where_(where) {}

  void skip_space() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t')) ++at_;
  }
  bool take(char c) {
    skip_space();
    if (at_ < text_.size() && text_[at_] == c) return ++at_, true;
    return false;
  }
  void expect(char c, const char* what) {
    if (!take(c)) fail(message("expected ", what));
  }
  std::string quoted() {
    skip_space();
    if (at_ >= text_.size() || (text_[at_] != '\'' && text_[at_] != '"')) fail("expected a quoted string");
    const char quote = text_[at_++];
    const size_t end = text_.find(quote, at_);
    if (end == std::string::npos) fail("a string is not closed");
    std::string value = text_.substr(at_, end - at_);
    at_ = end + 1;
    return value;
  }
  std::string word() {
    skip_space();
    const size_t start = at_;
    while (at_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[at_]))) ++at_;
    return text_.substr(start, at_ - start);
  }
  int64_t integer() {
    skip_space();
    const size_t start = at_;
    int64_t value = 0;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
      if (value > (INT64_MAX - 9) / 10) fail("a dimension beyond 2^63");
      value = value * 10 + (text_[at_++] - '0');
    }
    if (at_ == start) fail("expected a non-negative integer dimension");
    return value;
  }
  std::vector<int64_t> shape() {
    expect('(', "'(' opening the shape tuple");
    std::vector<int64_t> dims;
    while (!take(')')) {
      dims.push_back(integer());
      if (dims.size() > 32) fail("more than 32 dimensions");
      if (!take(',')) {
        expect(')', "',' or ')' in the shape tuple");
        break;
      }
    }
    return dims;
  }
  bool at_end() {
    skip_space();
    return at_ == text_.size();
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(message(where_, ": .npy header ", what, " at character ", at_, " of ", text_));
  }

 private:
  const std::string& text_;
  const std::string& where_;
  size_t at_ = 0;
};

struct Dict {
  std::string descr;
  bool fortran_order = true;
  std::vector<int64_t> shape;
};

Dict parse_dict(const std::string& text, const std::string& where) {
  DictParser p(text, where);
  Dict dict;
  bool seen[3] = {false, false, false};
  p.expect('{', "'{'");
  while (!p.take('}')) {
    const std::string key = p.quoted();
    p.expect(':', "':' after a key");
    const int slot = key == "descr" ? 0 : key == "fortran_order" ? 1 : key == "shape" ? 2 : -1;
    if (slot < 0) p.fail(message("has the unknown key '", key, "'"));
    if (seen[slot]) p.fail(message("repeats the key '", key, "'"));
    seen[slot] = true;
    if (slot == 0) dict.descr = p.quoted();
    if (slot == 1) {
      const std::string value = p.word();
      if (value != "True" && value != "False") p.fail(message("has fortran_order '", value, "', not True or False"));
      dict.fortran_order = value == "True";
    }
    if (slot == 2) dict.shape = p.shape();
    if (!p.take(',')) {
      p.expect('}', "',' or '}' after a value");
      break;
    }
  }
  if (!p.at_end()) p.fail("has text after the closing '}'");
  if (!(seen[0] && seen[1] && seen[2])) p.fail("lacks one of the keys 'descr', 'fortran_order' and 'shape'");
  return dict;
}

uint32_t little_endian(const uint8_t* p, int bytes) {
  uint32_t value = 0;
  for (int k = bytes - 1; k >= 0; --k) value = value << 8 | p[k];
  return value;
}

// The size of magic, version and length field for `version`, or an error.
int64_t preamble_bytes(const uint8_t* bytes, int64_t size, const std::string& where) {
  SPT_CHECK(size >= kMagicBytes + 2 && std::memcmp(bytes, kMagic, kMagicBytes) == 0, where,
            ": not a .npy file (no \\x93NUMPY magic at its start)");
  const int major = bytes[6], minor = bytes[7];
  SPT_CHECK(major >= 1 && major <= 3 && minor == 0, where, ": .npy version ", major, ".", minor,
            " is not 1.0, 2.0 or 3.0");
  return major == 1 ? 10 : 12;
}

}  // namespace

int64_t NpyHeader::elements() const {
  int64_t product = 1;
  for (int64_t d : shape) product *= d;
  return product;
}

NpyHeader parse_npy_header(const uint8_t* bytes, int64_t size, const std::string& where) {
  const int64_t preamble = preamble_bytes(bytes, size, where);
  SPT_CHECK(size >= preamble, where, ": the .npy header is cut short after ", size, " bytes");
  const int64_t length = little_endian(bytes + 8, static_cast<int>(preamble - 8));
  SPT_CHECK(length <= kMaxNpyHeaderBytes, where, ": .npy header of ", length, " bytes, more than the ",
            kMaxNpyHeaderBytes, " spt reads");
  SPT_CHECK(size >= preamble + length, where, ": the .npy header of ", length, " bytes is cut short after ",
            size - preamble);
  std::string text(reinterpret_cast<const char*>(bytes + preamble), static_cast<size_t>(length));
  SPT_CHECK(!text.empty() && text.back() == '\n', where, ": the .npy header does not end in a newline");
  text.pop_back();
  const Dict dict = parse_dict(text, where);
  SPT_CHECK(dict.descr == "|u1" || dict.descr == "<u1", where, ": .npy descr '", dict.descr,
            "' is not '|u1' (unsigned bytes): spt reads 8-bit pixels only");
  SPT_CHECK(!dict.fortran_order, where, ": .npy fortran_order is True; spt reads row-major (C order) arrays only");
  NpyHeader header;
  header.shape = dict.shape;
  header.header_bytes = preamble + length;
  int64_t product = 1;
  for (int64_t d : header.shape) {
    SPT_CHECK(d == 0 || product <= INT64_MAX / d, where, ": .npy shape of more than 2^63 elements");
    product *= d;
  }
  return header;
}

NpyHeader read_npy_header(ByteSource& source) {
  const std::string& where = source.name();
  uint8_t preamble[12] = {};
  const int64_t first = std::min<int64_t>(source.size(), 10);
  source.read_exact(preamble, first);
  const int64_t preamble_size = preamble_bytes(preamble, first, where);
  if (preamble_size > first) source.read_exact(preamble + first, preamble_size - first);
  const int64_t length = little_endian(preamble + 8, static_cast<int>(preamble_size - 8));
  SPT_CHECK(length <= kMaxNpyHeaderBytes && length <= source.size() - preamble_size, where, ": .npy header of ",
            length, " bytes in a ", source.size(), "-byte array file (at most ", kMaxNpyHeaderBytes, ")");
  std::vector<uint8_t> bytes(static_cast<size_t>(preamble_size + length));
  std::memcpy(bytes.data(), preamble, static_cast<size_t>(preamble_size));
  source.read_exact(bytes.data() + preamble_size, length);
  NpyHeader header = parse_npy_header(bytes.data(), static_cast<int64_t>(bytes.size()), where);
  const int64_t data = source.size() - header.header_bytes;
  SPT_CHECK(data == header.elements(), where, ": the .npy shape holds ", header.elements(), " bytes but ", data,
            " follow the header", data < header.elements() ? " (the file is truncated)" : " (trailing bytes)");
  return header;
}

}  // namespace spt
