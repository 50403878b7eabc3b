// PNG and JPEG files into 8-bit images (io/png.h's Image) for `spt prepare`: grey stays
// 1 channel, colour (and palette) becomes 3-channel RGB. An alpha channel is dropped
// only when every pixel is opaque (255), so nothing is lost; any transparency is an
// error. 16-bit PNGs, CMYK JPEGs, corrupt or truncated files (a libjpeg warning
// included) are errors naming the file. PNG goes through libpng; JPEG through libjpeg,
// optional in the build (SPT_HAVE_JPEG): without it a JPEG is an error saying so.
#pragma once

#include <cstdint>
#include <string>

#include "io/png.h"

namespace spt {

// Decodes `size` bytes of a PNG or JPEG (told apart by the signature) named `name`; an
// image of more than `max_tokens` width * height * channels is refused before its
// pixels are allocated.
Image decode_image(const uint8_t* bytes, int64_t size, const std::string& name, int64_t max_tokens);

}  // namespace spt
