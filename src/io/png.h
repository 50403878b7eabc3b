// PNG output for the pictures people look at: attention patterns (RGB) and image
// samples (grayscale or RGB), written through libpng.
//
// Files are written to a temporary name next to the target, flushed and renamed,
// so a failed or interrupted write never leaves a half-written picture behind.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt {

// An 8-bit image, row-major, channels interleaved: 1 = grayscale, 3 = RGB.
struct Image {
  int width = 0, height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // (height, width, channels)
};

// rgb: (height, width, 3). Throws spt::Error naming the path on any failure.
void write_png_rgb(const std::string& path, const uint8_t* rgb, int width, int height);
// gray: (height, width). Throws spt::Error naming the path on any failure.
void write_png_gray(const std::string& path, const uint8_t* gray, int width, int height);
// Writes a 1- or 3-channel image.
void write_png(const std::string& path, const Image& image);

struct GridOptions {
  int columns = 0;            // images per row; 0: ceil(sqrt(N)), as square as the count allows
  int border = 1;             // pixels around and between images, 1 or 2
  uint8_t border_value = 128; // grey level of the border (every channel)
};

// Lays out N >= 1 images of one size and channel count as a grid, row by row:
// image k sits at column k mod columns, row k / columns, its top-left corner at
// (border + col * (width + border), border + row * (height + border)). Cells past
// the last image are filled with the border value.
Image image_grid(const std::vector<Image>& images, const GridOptions& options = {});

// Each pixel repeated `factor` times across and down (nearest neighbour), factor >= 1.
Image upscale_nearest(const Image& image, int factor);

// The same picture with 3 channels (a grayscale level copied to red, green and blue).
Image to_rgb(const Image& image);

}  // namespace spt
