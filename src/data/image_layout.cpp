#include "data/image_layout.h"

namespace spt {

void planes_to_raster(const uint8_t* planes, int64_t pixels, int channels, uint8_t* raster) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int ch = 0; ch < channels; ++ch) raster[p * channels + ch] = planes[ch * pixels + p];
}

}  // namespace spt
