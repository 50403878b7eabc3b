// Image arrays in NumPy files, as the downsampled ImageNet release (Chrabaszcz et al.
// 2017) ships them: train_data_batch_1..10.npz and val_data.npz, each an .npz (a zip)
// whose member data.npy is a uint8 array (N, 12288), every row one 64x64 image stored
// channel-planar (the red plane, then green, then blue, each row-major). A plain .npy
// of the same array is read too. The side is inferred from the row length R: R = 3 s^2
// is an s x s RGB image (12288: 64x64, 3072: 32x32), R = s^2 an s x s grey one (3 s^2
// is never a square, so the two cannot be confused); any other shape is an error.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/prepared_index.h"

namespace spt {

struct ImageArrayFile {
  std::string path;  // a .npy, or an .npz holding data.npy
  int64_t images = 0;
  ImageShape shape;
};

// True for a name ending in .npy or .npz (any case).
bool is_image_array_name(const std::string& path);

// Reads and checks the header (io/npy.h; the data size must match the shape before any
// pixel is read).
ImageArrayFile probe_image_array(const std::string& path);

// Streams the file's images in order: visit(first, count, pixels) with pixels (count,
// height, width, channels) in raster order, the channel fastest, for runs of at most
// a few MiB. A file that changed since probing, or a damaged zip member, is an error.
using ImageRunVisitor = std::function<void(int64_t first, int64_t count, const uint8_t* pixels)>;
void read_image_array(const ImageArrayFile& file, const ImageRunVisitor& visit);

}  // namespace spt
