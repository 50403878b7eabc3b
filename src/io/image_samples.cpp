#include "io/image_samples.h"

#include <algorithm>

#include "core/error.h"

namespace spt {
namespace {

// A cell of a completion grid: margin, original, gap, completion, margin (RGB), with the
// margins' pixels at the last given row and the one below it in red.
Image completion_cell(const Image& original, const Image& completion, int prefix_rows) {
  constexpr int kMargin = 2;
  constexpr uint8_t kCellBackground = 255;
  const Image left = to_rgb(original), right = to_rgb(completion);
  Image cell{2 * left.width + 3 * kMargin, left.height, 3, {}};
  cell.pixels.assign(static_cast<size_t>(cell.width) * cell.height * 3, kCellBackground);
  auto paste = [&](const Image& image, int x0) {
    for (int y = 0; y < image.height; ++y)
      std::copy_n(&image.pixels[static_cast<size_t>(y) * image.width * 3], image.width * 3,
                  &cell.pixels[(static_cast<size_t>(y) * cell.width + x0) * 3]);
  };
  paste(left, kMargin);
  paste(right, 2 * kMargin + left.width);
  for (int y = std::max(0, prefix_rows - 1); y <= std::min(cell.height - 1, prefix_rows); ++y)
    for (int x0 : {0, kMargin + left.width, 2 * kMargin + 2 * left.width})
      for (int x = x0; x < x0 + kMargin; ++x) {
        uint8_t* p = &cell.pixels[(static_cast<size_t>(y) * cell.width + x) * 3];
        p[0] = 230, p[1] = 30, p[2] = 30;
      }
  return cell;
}

}  // namespace

int default_scale(int width, int height) {
  const int longest = std::max(1, std::max(width, height));
  return std::max(1, (kTargetGridPixels + longest - 1) / longest);
}

Image sample_grid(const ImageSamples& images, int scale) {
  SPT_CHECK(images.originals.empty() || images.originals.size() == images.samples.size(), "got ",
            images.originals.size(), " original images for ", images.samples.size(), " samples");
  SPT_CHECK(scale >= 0, "--scale ", scale, " must be at least 1 (0: automatic)");
  std::vector<Image> cells;
  for (size_t k = 0; k < images.samples.size(); ++k)
    cells.push_back(images.originals.empty() ? images.samples[k]
                                             : completion_cell(images.originals[k], images.samples[k],
                                                               images.prefix_rows));
  const Image grid = image_grid(cells);
  const int factor = scale > 0 ? scale : default_scale(grid.width, grid.height);
  const int64_t longest = int64_t{std::max(grid.width, grid.height)} * factor;
  SPT_CHECK(longest <= kMaxGridPixels, "the grid would be ", longest, " pixels on its longer side (", grid.width,
            "x", grid.height, " at --scale ", factor, "), more than ", kMaxGridPixels, ": lower --scale or --count");
  return upscale_nearest(grid, factor);
}

}  // namespace spt
