// PNG writer: pixels survive a round trip through libpng's reader, grids put each
// image where the layout says, and failed writes name the path and leave nothing.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/png.h"
#include "test_support.h"

namespace spt {
namespace {

std::string temp_dir() {
  std::string pattern = std::filesystem::temp_directory_path() / "spt_png_XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
  return pattern;
}

// Reads a PNG with libpng's simplified API in the requested format.
Image read_png(const std::string& path, png_uint_32 format) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  Image out;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    ADD_FAILURE() << "cannot read " << path << ": " << image.message;
    return out;
  }
  image.format = format;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.channels = static_cast<int>(PNG_IMAGE_PIXEL_CHANNELS(format));
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr))
    ADD_FAILURE() << "cannot decode " << path << ": " << image.message;
  return out;
}

// Pixel values that differ across x, y and channel, so a swapped axis or channel shows.
Image pattern_image(int width, int height, int channels, int seed) {
  Image image;
  image.width = width;
  image.height = height;
  image.channels = channels;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int ch = 0; ch < channels; ++ch)
        image.pixels.push_back(static_cast<uint8_t>((seed * 31 + y * 17 + x * 5 + ch * 101) % 256));
  return image;
}

TEST(Png, RgbRoundTrip) {
  const std::string dir = temp_dir();
  const Image image = pattern_image(7, 5, 3, 1);
  const std::string path = dir + "/rgb.png";
  write_png_rgb(path, image.pixels.data(), image.width, image.height);
  const Image back = read_png(path, PNG_FORMAT_RGB);
  EXPECT_EQ(back.width, 7);
  EXPECT_EQ(back.height, 5);
  EXPECT_EQ(back.pixels, image.pixels);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1) << "a temporary file was left behind";
  std::filesystem::remove_all(dir);
}

TEST(Png, GrayRoundTrip) {
  const std::string dir = temp_dir();
  const Image image = pattern_image(9, 4, 1, 2);
  const std::string path = dir + "/gray.png";
  write_png(path, image);
  const Image back = read_png(path, PNG_FORMAT_GRAY);
  EXPECT_EQ(back.width, 9);
  EXPECT_EQ(back.height, 4);
  EXPECT_EQ(back.pixels, image.pixels);
  std::filesystem::remove_all(dir);
}

TEST(Png, OverwriteReplacesTheWholeFile) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/p.png";
  const Image big = pattern_image(40, 30, 3, 3), small = pattern_image(2, 3, 3, 4);
  write_png(path, big);
  write_png(path, small);
  const Image back = read_png(path, PNG_FORMAT_RGB);
  EXPECT_EQ(back.width, 2);
  EXPECT_EQ(back.pixels, small.pixels);
  std::filesystem::remove_all(dir);
}

TEST(Png, MissingDirectoryNamesThePathAndLeavesNoFile) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/missing/out.png";
  const Image image = pattern_image(3, 3, 3, 5);
  testing_support::expect_error([&] { write_png(path, image); }, {path});
  EXPECT_FALSE(std::filesystem::exists(dir + "/missing"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 0);
  std::filesystem::remove_all(dir);
}

TEST(Png, BadImagesAreRefused) {
  Image wrong_size = pattern_image(3, 3, 3, 6);
  wrong_size.pixels.pop_back();
  EXPECT_THROW(write_png("/tmp/never.png", wrong_size), Error);
  Image two_channels = pattern_image(3, 3, 2, 6);
  EXPECT_THROW(write_png("/tmp/never.png", two_channels), Error);
  EXPECT_THROW(write_png_rgb("/tmp/never.png", wrong_size.pixels.data(), 0, 3), Error);
  EXPECT_FALSE(std::filesystem::exists("/tmp/never.png"));
}

// Expected grid pixel, from the layout rule written out directly.
uint8_t expected_grid_value(const std::vector<Image>& images, int columns, int border, uint8_t border_value, int gx,
                            int gy, int ch) {
  const int w = images[0].width, h = images[0].height, c = images[0].channels;
  const int col = (gx - border) / (w + border), row = (gy - border) / (h + border);
  const int x = gx - border - col * (w + border), y = gy - border - row * (h + border);
  const int k = row * columns + col;
  if (gx < border || gy < border || x >= w || y >= h || col >= columns || k >= static_cast<int>(images.size()))
    return border_value;
  return images[k].pixels[(y * w + x) * c + ch];
}

void check_grid(int count, int channels, const GridOptions& options, int expected_columns) {
  std::vector<Image> images;
  for (int k = 0; k < count; ++k) images.push_back(pattern_image(5, 4, channels, 10 + k));
  const Image grid = image_grid(images, options);
  const int rows = (count + expected_columns - 1) / expected_columns;
  ASSERT_EQ(grid.channels, channels);
  ASSERT_EQ(grid.width, expected_columns * 5 + (expected_columns + 1) * options.border);
  ASSERT_EQ(grid.height, rows * 4 + (rows + 1) * options.border);
  for (int gy = 0; gy < grid.height; ++gy)
    for (int gx = 0; gx < grid.width; ++gx)
      for (int ch = 0; ch < channels; ++ch)
        ASSERT_EQ(grid.pixels[(gy * grid.width + gx) * channels + ch],
                  expected_grid_value(images, expected_columns, options.border, options.border_value, gx, gy, ch))
            << "count " << count << " at (" << gx << ", " << gy << ") channel " << ch;
  // The top-left pixel of image k, spelled out once more by coordinates.
  for (int k = 0; k < count; ++k) {
    const int x0 = options.border + (k % expected_columns) * (5 + options.border);
    const int y0 = options.border + (k / expected_columns) * (4 + options.border);
    EXPECT_EQ(grid.pixels[(y0 * grid.width + x0) * channels], images[k].pixels[0]) << "image " << k;
  }
}

TEST(PngGrid, PlacesEachImage) {
  check_grid(7, 1, {0, 1, 128}, 3);   // automatic: ceil(sqrt(7)) = 3 columns, last row partly empty
  check_grid(4, 3, {0, 2, 255}, 2);
  check_grid(5, 3, {5, 2, 0}, 5);     // one row
  check_grid(6, 1, {4, 1, 60}, 4);
  check_grid(1, 1, {0, 1, 9}, 1);
  check_grid(3, 1, {8, 1, 9}, 3);     // more columns than images: as many as there are images
}

TEST(PngGrid, RefusesMismatchedImages) {
  std::vector<Image> images{pattern_image(5, 4, 1, 0), pattern_image(4, 5, 1, 1)};
  EXPECT_THROW(image_grid(images), Error);
  EXPECT_THROW(image_grid({}), Error);
  EXPECT_THROW(image_grid({pattern_image(2, 2, 1, 0)}, {0, 3, 0}), Error);
}

}  // namespace
}  // namespace spt
