// The regular files of a tar archive, found by a small strict reader rather than a
// library: tar is a trivial container (a 512-byte header before each file's raw bytes,
// padded to 512, no compression), so reading it needs no dependency. Understood: POSIX
// ustar and GNU headers, pax 'x' records and GNU 'L' records for long names, octal
// sizes. Refused with the member and offset named: a header whose checksum or magic is
// wrong, base-256 sizes (files over 8 GiB), sparse members, a member running past the
// end of the archive, a compressed archive (unpack .tar.gz first). Links, directories
// and devices are skipped: they hold no image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt {

struct TarMember {
  std::string name;    // its path in the archive
  int64_t offset = 0;  // of its first data byte in the archive
  int64_t size = 0;
};

// The regular files of the archive held in bytes [0, size), in archive order. `where`
// (the archive's path) starts every error.
std::vector<TarMember> list_tar(const uint8_t* bytes, int64_t size, const std::string& where);

}  // namespace spt
