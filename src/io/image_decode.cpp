#include "io/image_decode.h"

#include <png.h>

#include <cstring>
#include <memory>

#include "core/error.h"
#include "io/jpeg.h"

namespace spt {
namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

void check_tokens(const std::string& name, int64_t width, int64_t height, int channels, int64_t max_tokens) {
  SPT_CHECK(width >= 1 && height >= 1 && width * height <= max_tokens / channels, "'", name, "' is a ", width, "x",
            height, "x", channels, " image, more than the ", max_tokens, " tokens spt prepares");
}

// Drops the last of `channels` channels when it is opaque everywhere.
Image drop_opaque_alpha(const std::string& name, int width, int height, int channels, const std::vector<uint8_t>& in) {
  Image out{width, height, channels - 1, std::vector<uint8_t>(static_cast<size_t>(width) * height * (channels - 1))};
  const size_t pixels = static_cast<size_t>(width) * height;
  for (size_t p = 0; p < pixels; ++p) {
    const uint8_t alpha = in[p * channels + channels - 1];
    SPT_CHECK(alpha == 255, "'", name, "' has a transparent pixel (alpha ", int{alpha}, " at pixel ", p % width, ",",
              p / width, "); spt prepares opaque grey or RGB images only");
    std::memcpy(&out.pixels[p * (channels - 1)], &in[p * channels], static_cast<size_t>(channels - 1));
  }
  return out;
}

Image decode_png(const uint8_t* bytes, int64_t size, const std::string& name, int64_t max_tokens) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  SPT_CHECK(png_image_begin_read_from_memory(&image, bytes, static_cast<size_t>(size)) != 0, "cannot decode '", name,
            "' as PNG: ", image.message);
  std::unique_ptr<png_image, void (*)(png_imagep)> guard(&image, png_image_free);
  SPT_CHECK(!(image.format & PNG_FORMAT_FLAG_LINEAR), "'", name,
            "' is a 16-bit PNG; spt prepares 8-bit images only (convert it to 8 bits)");
  const bool alpha = (image.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  const bool colour = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
  image.format = (colour ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY) | (alpha ? PNG_FORMAT_FLAG_ALPHA : 0);
  const int channels = PNG_IMAGE_SAMPLE_CHANNELS(image.format);
  check_tokens(name, image.width, image.height, channels, max_tokens);
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
  SPT_CHECK(png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr) != 0, "cannot decode '", name,
            "' as PNG: ", image.message);
  const int width = static_cast<int>(image.width), height = static_cast<int>(image.height);
  if (alpha) return drop_opaque_alpha(name, width, height, channels, pixels);
  return Image{width, height, channels, std::move(pixels)};
}

}  // namespace

Image decode_image(const uint8_t* bytes, int64_t size, const std::string& name, int64_t max_tokens) {
  if (size >= 8 && std::memcmp(bytes, kPngSignature, 8) == 0) return decode_png(bytes, size, name, max_tokens);
  if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
    return decode_jpeg(bytes, size, name, max_tokens);
  throw Error(message("cannot decode '", name, "': not a PNG or JPEG file (no PNG or JPEG signature at its start)"));
}

}  // namespace spt
