// Sample pictures: enlarged with nearest neighbour to a visible size, completions beside
// their originals with the end of the given rows marked in red.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/image_samples.h"
#include "io/png.h"

namespace spt {
namespace {

Image gray(int width, int height, uint8_t level) {
  return {width, height, 1, std::vector<uint8_t>(static_cast<size_t>(width) * height, level)};
}

bool red(const Image& image, int x, int y) {
  const uint8_t* p = &image.pixels[(static_cast<size_t>(y) * image.width + x) * 3];
  return p[0] > 200 && p[1] < 60 && p[2] < 60;
}

TEST(ImageSamples, UpscaleRepeatsEveryPixel) {
  Image image{2, 1, 3, {1, 2, 3, 4, 5, 6}};
  const Image big = upscale_nearest(image, 3);
  ASSERT_EQ(big.width, 6);
  ASSERT_EQ(big.height, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 6; ++x)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(big.pixels[(y * 6 + x) * 3 + c], image.pixels[(x / 3) * 3 + c]);
  EXPECT_THROW(upscale_nearest(image, 0), Error);
  EXPECT_EQ(to_rgb(gray(1, 1, 9)).pixels, (std::vector<uint8_t>{9, 9, 9}));
}

TEST(ImageSamples, DefaultScaleReachesTheTargetSize) {
  EXPECT_EQ(default_scale(117, 117), 5);  // 16 Fashion-MNIST images: 585 pixels
  EXPECT_EQ(default_scale(512, 100), 1);
  EXPECT_EQ(default_scale(1000, 1000), 1);
  EXPECT_EQ(default_scale(100, 30), 6);
  ImageSamples plain;
  plain.samples = {gray(28, 28, 0), gray(28, 28, 255), gray(28, 28, 9), gray(28, 28, 9)};
  const Image grid = sample_grid(plain, 0);
  EXPECT_EQ(grid.width, 59 * 9);  // 2 x 28 + 3 border pixels, times the smallest scale reaching 512
  EXPECT_EQ(sample_grid(plain, 2).width, 59 * 2);
  EXPECT_THROW(sample_grid(plain, 1000), Error);  // 59,000 pixels wide
}

TEST(ImageSamples, CompletionsSitBesideTheirOriginalsWithTheBoundaryMarked) {
  ImageSamples completions;
  completions.samples = {gray(8, 6, 200)};
  completions.originals = {gray(8, 6, 50)};
  completions.prefix_rows = 3;
  const Image cell = sample_grid(completions, 1);
  ASSERT_EQ(cell.channels, 3);
  // Grid border 1, then margin 2, original 8, gap 2, completion 8, margin 2, border 1.
  ASSERT_EQ(cell.width, 1 + 2 + 8 + 2 + 8 + 2 + 1);
  ASSERT_EQ(cell.height, 1 + 6 + 1);
  EXPECT_EQ(cell.pixels[(1 * cell.width + 3) * 3], 50);   // the original, left
  EXPECT_EQ(cell.pixels[(1 * cell.width + 13) * 3], 200);  // the completion, right
  for (int x : {1, 2, 11, 12, 21, 22}) {
    EXPECT_TRUE(red(cell, x, 1 + 2)) << x;   // the last given row (2) ...
    EXPECT_TRUE(red(cell, x, 1 + 3)) << x;   // ... and the first completed one
    EXPECT_FALSE(red(cell, x, 1 + 0)) << x;  // nowhere else
    EXPECT_FALSE(red(cell, x, 1 + 5)) << x;
  }
  EXPECT_FALSE(red(cell, 5, 3));  // pixels of the images are untouched
  completions.originals.clear();
  completions.originals = {gray(8, 6, 1), gray(8, 6, 1)};
  EXPECT_THROW(sample_grid(completions, 1), Error);
}

}  // namespace
}  // namespace spt
