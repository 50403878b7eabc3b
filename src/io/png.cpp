#include "io/png.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "io/file_util.h"

namespace spt {
namespace {

void check_size(const std::string& path, int width, int height, const void* data) {
  SPT_CHECK(width >= 1 && height >= 1, "cannot write PNG '", path, "': image size ", width, "x", height,
            " must be at least 1x1");
  SPT_CHECK(data != nullptr, "cannot write PNG '", path, "': no pixel data");
}

// Encodes in memory, then writes through write_file_atomically (a temporary sibling,
// fsynced and renamed over `path`).
void write_png_format(const std::string& path, const uint8_t* pixels, int width, int height, png_uint_32 format) {
  check_size(path, width, height, pixels);
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = format;
  png_alloc_size_t size = 0;
  const bool sized = png_image_write_to_memory(&image, nullptr, &size, 0, pixels, 0, nullptr) != 0;
  std::vector<uint8_t> encoded(sized ? size : 0);  // (size) the PNG file's bytes
  const bool ok = sized && png_image_write_to_memory(&image, encoded.data(), &size, 0, pixels, 0, nullptr) != 0;
  const std::string failure = ok ? std::string() : std::string(image.message);
  png_image_free(&image);
  SPT_CHECK(ok, "cannot write PNG '", path, "': ", failure);
  write_file_atomically(path, [&](OutputFile& out) { out.write(encoded.data(), static_cast<int64_t>(size)); });
}

}  // namespace

void write_png_rgb(const std::string& path, const uint8_t* rgb, int width, int height) {
  write_png_format(path, rgb, width, height, PNG_FORMAT_RGB);
}

void write_png_gray(const std::string& path, const uint8_t* gray, int width, int height) {
  write_png_format(path, gray, width, height, PNG_FORMAT_GRAY);
}

void write_png(const std::string& path, const Image& image) {
  SPT_CHECK(image.channels == 1 || image.channels == 3, "cannot write PNG '", path, "': ", image.channels,
            " channels per pixel, expected 1 (grayscale) or 3 (RGB)");
  SPT_CHECK(image.pixels.size() == static_cast<size_t>(image.width) * image.height * image.channels,
            "cannot write PNG '", path, "': ", image.pixels.size(), " bytes of pixels for a ", image.width, "x",
            image.height, "x", image.channels, " image");
  if (image.channels == 1) write_png_gray(path, image.pixels.data(), image.width, image.height);
  else write_png_rgb(path, image.pixels.data(), image.width, image.height);
}

Image image_grid(const std::vector<Image>& images, const GridOptions& options) {
  SPT_CHECK(!images.empty(), "image grid needs at least one image");
  SPT_CHECK(options.border == 1 || options.border == 2, "image grid border ", options.border,
            " must be 1 or 2 pixels");
  SPT_CHECK(options.columns >= 0, "image grid columns ", options.columns, " must be non-negative (0: automatic)");
  const Image& first = images.front();
  for (size_t k = 0; k < images.size(); ++k) {
    const Image& image = images[k];
    SPT_CHECK(image.width == first.width && image.height == first.height && image.channels == first.channels,
              "image grid: image ", k, " is ", image.width, "x", image.height, "x", image.channels,
              " but image 0 is ", first.width, "x", first.height, "x", first.channels, "; all must match");
    SPT_CHECK(image.pixels.size() == static_cast<size_t>(image.width) * image.height * image.channels,
              "image grid: image ", k, " holds ", image.pixels.size(), " bytes, expected ",
              static_cast<size_t>(image.width) * image.height * image.channels);
  }
  const int count = static_cast<int>(images.size());
  const int columns = options.columns > 0 ? std::min(options.columns, count)
                                          : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(count))));
  const int rows = (count + columns - 1) / columns;
  const int border = options.border, channels = first.channels;
  Image grid;
  grid.channels = channels;
  grid.width = columns * first.width + (columns + 1) * border;
  grid.height = rows * first.height + (rows + 1) * border;
  grid.pixels.assign(static_cast<size_t>(grid.width) * grid.height * channels, options.border_value);
  const size_t row_bytes = static_cast<size_t>(first.width) * channels;
  for (int k = 0; k < count; ++k) {
    const int x0 = border + (k % columns) * (first.width + border);
    const int y0 = border + (k / columns) * (first.height + border);
    for (int y = 0; y < first.height; ++y)
      std::memcpy(&grid.pixels[(static_cast<size_t>(y0 + y) * grid.width + x0) * channels],
                  &images[k].pixels[y * row_bytes], row_bytes);
  }
  return grid;
}

Image upscale_nearest(const Image& image, int factor) {
  SPT_CHECK(factor >= 1, "upscale factor ", factor, " must be at least 1");
  Image out{image.width * factor, image.height * factor, image.channels, {}};
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * out.channels);
  const size_t pixel = static_cast<size_t>(image.channels);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x)
      std::memcpy(&out.pixels[(static_cast<size_t>(y) * out.width + x) * pixel],
                  &image.pixels[(static_cast<size_t>(y / factor) * image.width + x / factor) * pixel], pixel);
  return out;
}

Image to_rgb(const Image& image) {
  if (image.channels == 3) return image;
  SPT_CHECK(image.channels == 1, "to_rgb: ", image.channels, " channels per pixel, expected 1 or 3");
  Image out{image.width, image.height, 3, std::vector<uint8_t>(image.pixels.size() * 3)};
  for (size_t i = 0; i < image.pixels.size(); ++i)
    out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] = image.pixels[i];
  return out;
}

}  // namespace spt
