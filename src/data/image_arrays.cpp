#include "data/image_arrays.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "data/image_layout.h"
#include "io/npy.h"

namespace spt {
namespace {

constexpr int64_t kRunBytes = int64_t{4} << 20;

std::string lower_extension(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

std::unique_ptr<ByteSource> open_array(const std::string& path) {
  if (lower_extension(path) == ".npz") return open_zip_member(path, "data.npy");
  return open_file_source(path);
}

// The integer s with s * s == n, or 0.
int64_t exact_root(int64_t n) {
  auto s = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  for (int64_t c = std::max<int64_t>(1, s - 1); c <= s + 1; ++c)
    if (c * c == n) return c;
  return 0;
}

ImageShape shape_of_row(int64_t row, const std::string& where) {
  const int64_t grey = exact_root(row), rgb = row % 3 == 0 ? exact_root(row / 3) : 0;
  SPT_CHECK(grey > 0 || rgb > 0, where, ": rows of ", row, " bytes are neither 3 * side * side (an RGB image, ",
            "channel-planar) nor side * side (a grey image)");
  const int64_t side = grey > 0 ? grey : rgb;
  SPT_CHECK(side <= kMaxImageSide, where, ": rows of ", row, " bytes make ", side, "x", side, " images, larger than ",
            kMaxImageSide);
  ImageShape shape{static_cast<int>(side), static_cast<int>(side), grey > 0 ? 1 : 3};
  check_image_shape(shape, where);
  return shape;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t k = 0; k < shape.size(); ++k) text += (k ? ", " : "") + std::to_string(shape[k]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

bool is_image_array_name(const std::string& path) {
  const std::string ext = lower_extension(path);
  return ext == ".npy" || ext == ".npz";
}

ImageArrayFile probe_image_array(const std::string& path) {
  const std::unique_ptr<ByteSource> source = open_array(path);
  const NpyHeader header = read_npy_header(*source);
  SPT_CHECK(header.shape.size() == 2 && header.shape[0] >= 1 && header.shape[1] >= 1, source->name(), ": shape ",
            shape_text(header.shape), "; expected (images, pixels) with both at least 1, as the downsampled ImageNet ",
            "arrays are");
  ImageArrayFile file;
  file.path = path;
  file.images = header.shape[0];
  file.shape = shape_of_row(header.shape[1], source->name());
  return file;
}

void read_image_array(const ImageArrayFile& file, const ImageRunVisitor& visit) {
  const std::unique_ptr<ByteSource> source = open_array(file.path);
  const NpyHeader header = read_npy_header(*source);
  const int64_t row = file.shape.tokens();
  SPT_CHECK(header.shape.size() == 2 && header.shape[0] == file.images && header.shape[1] == row, source->name(),
            ": its shape changed to ", shape_text(header.shape), " while spt read it");
  const int64_t per_run = std::max<int64_t>(1, kRunBytes / row);
  std::vector<uint8_t> planes(static_cast<size_t>(std::min(per_run, file.images) * row));
  std::vector<uint8_t> raster(planes.size());
  const int64_t pixels = int64_t{file.shape.height} * file.shape.width;
  for (int64_t first = 0; first < file.images; first += per_run) {
    const int64_t count = std::min(per_run, file.images - first);
    source->read_exact(planes.data(), count * row);
    for (int64_t i = 0; i < count; ++i)
      planes_to_raster(planes.data() + i * row, pixels, file.shape.channels, raster.data() + i * row);
    visit(first, count, raster.data());
  }
  source->check_end();
}

}  // namespace spt
