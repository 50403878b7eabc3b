// Pixel layouts of image files and of spt's tokens. Tokens are raster order with the
// channel fastest, (height, width, channels); CIFAR-10 binaries and the downsampled
// ImageNet arrays store each image channel-planar, (channels, height, width): all red,
// then all green, then all blue.
#pragma once

#include <cstdint>

namespace spt {

// planes: (channels, pixels) -> raster: (pixels, channels), pixels = height * width.
void planes_to_raster(const uint8_t* planes, int64_t pixels, int channels, uint8_t* raster);

}  // namespace spt
