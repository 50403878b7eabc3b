// NumPy .npy headers, read strictly: the magic "\x93NUMPY", version 1.0, 2.0 or 3.0, a
// little-endian header length (2 bytes for version 1, 4 for 2 and 3) and a Python dict
// literal with exactly the keys 'descr', 'fortran_order' and 'shape'. spt reads bytes
// only, so descr must be '|u1' or '<u1', fortran_order False, and shape a tuple of
// non-negative integers whose product fits in 63 bits. Anything else is an error
// naming the file and the value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/byte_source.h"

namespace spt {

// The most header bytes spt reads (numpy writes under 200; the format allows 4 GiB).
inline constexpr int64_t kMaxNpyHeaderBytes = int64_t{1} << 16;

struct NpyHeader {
  std::vector<int64_t> shape;
  int64_t header_bytes = 0;  // magic through the dict's padding: the data starts here
  int64_t elements() const;  // the product of shape (1 for shape ())
};

// Parses a whole header held in bytes [0, size): `size` may run past the header (the
// data that follows is not read). `where` names the file in errors.
NpyHeader parse_npy_header(const uint8_t* bytes, int64_t size, const std::string& where);

// Reads the header from the start of `source`, leaving it at the first data byte, and
// checks that the source holds exactly elements() data bytes after it (before any is
// read, so a forged shape allocates nothing).
NpyHeader read_npy_header(ByteSource& source);

}  // namespace spt
