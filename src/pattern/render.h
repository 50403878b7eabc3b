// Pictures of attention patterns: queries as rows, keys as columns, one panel per head,
// A(1) in blue, A(2) in orange (both: their mix), the block grid in grey.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pattern/pattern.h"

namespace spt {

struct PatternPicture {
  int width = 0, height = 0;   // pixels
  std::vector<uint8_t> rgb;    // (height, width, 3)
  std::string note;            // what the picture shows when it is not every pair at full size
};

struct RenderOptions {
  int64_t T = 256;         // context
  int layer = 0;
  int block = 0;           // grid every `block` positions (0: no grid)
  int64_t crop = 0;        // > 0: show only the first `crop` positions, one cell per pair
  int64_t max_pixels = 1024;  // panel side above which the picture is downscaled
};

// Refuses (spt::Error suggesting --crop) a picture whose shading would take more than a
// few seconds or whose pixels would take more than 48 MiB.
PatternPicture render_pattern(const Pattern& pattern, const RenderOptions& options);

}  // namespace spt
