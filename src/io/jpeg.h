// JPEG through libjpeg (libjpeg62-turbo), optional in the build (SPT_HAVE_JPEG): without
// it every call is an error saying so. Decoding is for `spt prepare` (io/image_decode.h
// states the rules); writing is for tests and tools.
#pragma once

#include <cstdint>
#include <string>

#include "io/png.h"

namespace spt {

// True when this build reads and writes JPEG (it links libjpeg).
bool jpeg_available();

// Decodes a baseline or progressive JPEG: greyscale stays 1 channel, YCbCr/RGB becomes
// RGB; CMYK is an error, and so is any libjpeg warning (corrupt data, a truncated file)
// rather than an image padded with grey. More than `max_tokens` width * height *
// channels is refused before the pixels are allocated.
Image decode_jpeg(const uint8_t* bytes, int64_t size, const std::string& name, int64_t max_tokens);

// Writes a 1- or 3-channel image at `quality` 1..100.
void write_jpeg(const std::string& path, const Image& image, int quality);

}  // namespace spt
