// Pictures of image samples: a grid of them, or of completions beside the test images they
// complete, enlarged with nearest neighbour so small images (28x28, 32x32) are visible.
#pragma once

#include <vector>

#include "io/png.h"

namespace spt {

// The longer side a grid is enlarged to reach when no scale is given.
constexpr int kTargetGridPixels = 512;
constexpr int kMaxGridPixels = 8192;  // longest side of a grid; a larger one is refused

// The smallest integer scale that makes a width x height picture at least
// kTargetGridPixels on its longer side (1 for one that is already that large).
int default_scale(int width, int height);

// Images sampled from an image model, with the test images whose first prefix_rows rows
// they complete (originals empty, prefix_rows 0: plain samples).
struct ImageSamples {
  std::vector<Image> samples;
  std::vector<Image> originals;  // one per sample, or none
  int prefix_rows = 0;
};

// The picture to write: a grid of the samples; with originals, each cell holds the test
// image on the left and its completion on the right, with red tick marks in the margins
// at the last given row. Upscaled by `scale` (0: default_scale) with nearest neighbour.
Image sample_grid(const ImageSamples& images, int scale);

}  // namespace spt
