// Where and how `spt sample` writes its sequences. The format follows the extension of
// --out through one table (sample_format_for): .png grids for image models, .raw/.bin raw
// bytes for any model, .txt/.text for text models; anything else is refused naming the
// formats that work. Without --out, text goes to stdout, and image bytes go to stdout only
// when it is not a terminal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/png.h"

namespace spt::cli {

enum class SampleModality { text, image };
enum class SampleFormat { text, raw, png };

// The format for `out` (empty: stdout). stdout_is_terminal refuses binary output there.
SampleFormat sample_format_for(const std::string& out, SampleModality modality, bool stdout_is_terminal);

// Text: the sequences as they are, each followed by a newline, with a header line between
// them when there are several. Raw: the bytes of every sequence back to back, nothing else.
// An empty path writes to stdout; a file is written atomically.
void write_text_samples(const std::string& path, const std::vector<std::vector<uint8_t>>& samples);
void write_raw_samples(const std::string& path, const std::vector<std::vector<uint8_t>>& samples);

// The side of the picture to aim for when --scale is not given.
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

}  // namespace spt::cli
