#include "pattern/render.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace spt {
namespace {

constexpr int kGap = 8;  // pixels between head panels
constexpr uint8_t kBlue[3] = {31, 119, 180};
constexpr uint8_t kOrange[3] = {255, 127, 14};
constexpr uint8_t kGrid[3] = {170, 170, 170};
constexpr uint8_t kFuture = 235;  // keys after the query (never allowed)
// Every pixel counts the keys of its query rows, heads x cells x shown counts in all;
// 2^29 of them (4 heads, T = 2^17) take 2.2 s on 2 cores.
constexpr int64_t kMaxShadingWork = int64_t{1} << 29;
// 16 Mi pixels (48 MiB of RGB) take about a second to compress into the PNG.
constexpr int64_t kMaxPixels = int64_t{1} << 24;

void check_picture_size(int64_t shown, int64_t cells, int64_t zoom, int heads) {
  const double work = double(heads) * double(cells) * double(shown);
  const double side = double(cells) * zoom, pixels = double(heads) * side * side;
  SPT_CHECK(work <= double(kMaxShadingWork) && pixels <= double(kMaxPixels), "a picture of ", shown,
            " positions with ", heads, " heads would count ", work, " key rows into ", pixels,
            " pixels, more than the ", kMaxShadingWork, " rows and ", kMaxPixels,
            " pixels it may take (it would run for minutes): draw the first N positions with --crop N, N at most ",
            static_cast<int64_t>(std::sqrt(double(kMaxPixels) / heads)));
}

// Fraction of allowed pairs of each part in the square [i0, i1) x [j0, j1).
void part_fractions(const HeadMask& mask, int64_t i0, int64_t i1, int64_t j0, int64_t j1, double* a1, double* a2) {
  HeadMask only1 = mask, only2 = mask;
  only1.use_a2 = false;
  only2.use_a1 = false;
  int64_t n1 = 0, n2 = 0;
  for (int64_t i = i0; i < i1; ++i) {
    if (mask.use_a1) n1 += only1.count_keys(i, j0, j1);
    if (mask.use_a2) n2 += only2.count_keys(i, j0, j1);
  }
  const double cells = static_cast<double>((i1 - i0) * (j1 - j0));
  *a1 = n1 / cells;
  *a2 = n2 / cells;
}

void shade(uint8_t* pixel, double a1, double a2, bool future) {
  for (int ch = 0; ch < 3; ++ch) {
    const double base = future ? kFuture : 255.0;
    const double value = base - a1 * (255.0 - kBlue[ch]) - a2 * (255.0 - kOrange[ch]);
    pixel[ch] = static_cast<uint8_t>(std::clamp(std::lround(value), 0L, 255L));
  }
}

}  // namespace

PatternPicture render_pattern(const Pattern& pattern, const RenderOptions& options) {
  SPT_CHECK(options.T >= 1, "context length T = ", options.T, " must be at least 1 (--ctx)");
  SPT_CHECK(options.crop >= 0, "crop ", options.crop, " must be non-negative (--crop)");
  const int64_t shown = options.crop > 0 ? std::min(options.crop, options.T) : options.T;
  // Positions per pixel (downscale) or pixels per position (upscale).
  const int64_t per_pixel = options.crop > 0 ? 1 : std::max<int64_t>(1, (shown + options.max_pixels - 1) / options.max_pixels);
  const int64_t cells = (shown + per_pixel - 1) / per_pixel;
  const int zoom = static_cast<int>(std::clamp<int64_t>(512 / cells, 1, 8));
  check_picture_size(shown, cells, zoom, pattern.heads());
  const int panel = static_cast<int>(cells * zoom);
  const int heads = pattern.heads();
  PatternPicture picture;
  picture.width = heads * panel + (heads - 1) * kGap;
  picture.height = panel;
  picture.rgb.assign(static_cast<size_t>(picture.width) * picture.height * 3, 255);
  if (options.crop > 0 && options.crop < options.T)
    picture.note = message("cropped to the first ", shown, " of ", options.T, " positions");
  if (per_pixel > 1)
    picture.note = message("downscaled ", per_pixel, "x: each pixel covers ", per_pixel, "x", per_pixel,
                           " pairs and its shade is the fraction allowed (--crop N shows the first N positions pair by pair)");
  const bool grid = options.block > 0 && options.block * zoom / per_pixel >= 4;
  if (options.block > 0 && !grid)
    picture.note += std::string(picture.note.empty() ? "" : "; ") + "block grid omitted: blocks are under 4 pixels at this scale";
  for (int h = 0; h < heads; ++h) {
    const HeadMask mask = pattern.head_mask(options.layer, h);
    const int x0 = h * (panel + kGap);
    parallel_for(cells, [&](int64_t row_begin, int64_t row_end) {
      for (int64_t r = row_begin; r < row_end; ++r)
        for (int64_t c = 0; c < cells; ++c) {
          const int64_t i0 = r * per_pixel, i1 = std::min(shown, i0 + per_pixel);
          const int64_t j0 = c * per_pixel, j1 = std::min(shown, j0 + per_pixel);
          double a1 = 0, a2 = 0;
          if (j0 <= i1 - 1) part_fractions(mask, i0, i1, j0, j1, &a1, &a2);
          uint8_t color[3];
          shade(color, a1, a2, j0 > i1 - 1);
          for (int dy = 0; dy < zoom; ++dy)
            for (int dx = 0; dx < zoom; ++dx) {
              uint8_t* p = &picture.rgb[((r * zoom + dy) * picture.width + x0 + c * zoom + dx) * 3];
              std::copy(color, color + 3, p);
            }
        }
    });
    if (!grid) continue;
    for (int64_t boundary = options.block; boundary < shown; boundary += options.block) {
      const int64_t px = boundary / per_pixel * zoom;
      for (int y = 0; y < panel; ++y) std::copy(kGrid, kGrid + 3, &picture.rgb[(y * picture.width + x0 + px) * 3]);
      for (int x = 0; x < panel; ++x) std::copy(kGrid, kGrid + 3, &picture.rgb[(px * picture.width + x0 + x) * 3]);
    }
  }
  return picture;
}

}  // namespace spt
