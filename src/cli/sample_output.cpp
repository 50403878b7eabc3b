#include "cli/sample_output.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "io/file_util.h"

namespace spt::cli {
namespace {

struct FormatRule {
  const char* extension;
  SampleFormat format;
  bool text_models, image_models;
};

// One row per extension: a new output format (audio, ...) is one more row and one more
// writer in `spt sample`.
constexpr FormatRule kFormats[] = {
    {".png", SampleFormat::png, false, true},
    {".raw", SampleFormat::raw, true, true},
    {".bin", SampleFormat::raw, true, true},
    {".txt", SampleFormat::text, true, false},
    {".text", SampleFormat::text, true, false},
};

bool accepts(const FormatRule& rule, SampleModality modality) {
  return modality == SampleModality::text ? rule.text_models : rule.image_models;
}

std::string extension_of(const std::string& path) {
  const size_t slash = path.find_last_of('/'), dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

std::string working_extensions(SampleModality modality) {
  std::string list;
  for (const FormatRule& rule : kFormats)
    if (accepts(rule, modality)) list += (list.empty() ? "" : ", ") + std::string(rule.extension);
  return list;
}

const char* modality_name(SampleModality modality) { return modality == SampleModality::text ? "a text" : "an image"; }

void write_bytes(const std::string& path, const std::string& bytes, const std::string& what) {
  if (path.empty()) {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
    return;
  }
  write_file_atomically(path, [&](OutputFile& out) { out.write(bytes.data(), static_cast<int64_t>(bytes.size())); });
  std::printf("wrote %s to %s\n", what.c_str(), path.c_str());
}

// A cell of a completion grid: margin, original, gap, completion, margin (RGB), with the
// margins' pixels at the last given row and the one below it in red.
Image completion_cell(const Image& original, const Image& completion, int prefix_rows) {
  constexpr int kMargin = 2;
  constexpr uint8_t kCellBackground = 255;
  const Image left = to_rgb(original), right = to_rgb(completion);
  Image cell{2 * left.width + 3 * kMargin, left.height, 3, {}};
  cell.pixels.assign(static_cast<size_t>(cell.width) * cell.height * 3, kCellBackground);
  auto paste = [&](const Image& image, int x0) {
    for (int y = 0; y < image.height; ++y)
      std::copy_n(&image.pixels[static_cast<size_t>(y) * image.width * 3], image.width * 3,
                  &cell.pixels[(static_cast<size_t>(y) * cell.width + x0) * 3]);
  };
  paste(left, kMargin);
  paste(right, 2 * kMargin + left.width);
  for (int y = std::max(0, prefix_rows - 1); y <= std::min(cell.height - 1, prefix_rows); ++y)
    for (int x0 : {0, kMargin + left.width, 2 * kMargin + 2 * left.width})
      for (int x = x0; x < x0 + kMargin; ++x) {
        uint8_t* p = &cell.pixels[(static_cast<size_t>(y) * cell.width + x) * 3];
        p[0] = 230, p[1] = 30, p[2] = 30;
      }
  return cell;
}

}  // namespace

SampleFormat sample_format_for(const std::string& out, SampleModality modality, bool stdout_is_terminal) {
  if (out.empty()) {
    SPT_CHECK(modality == SampleModality::text || !stdout_is_terminal,
              "image samples are binary and stdout is a terminal: use --out samples.png for a picture (or .raw for "
              "the bytes), or redirect stdout");
    return modality == SampleModality::text ? SampleFormat::text : SampleFormat::raw;
  }
  const std::string ext = extension_of(out);
  for (const FormatRule& rule : kFormats)
    if (ext == rule.extension) {
      SPT_CHECK(accepts(rule, modality), "--out '", out, "': ", ext, " does not fit ", modality_name(modality),
                " model; use ", working_extensions(modality));
      return rule.format;
    }
  throw Error(message("--out '", out, "': unknown output format '", ext.empty() ? "(no extension)" : ext, "' for ",
                      modality_name(modality), " model; use ", working_extensions(modality)));
}

void write_text_samples(const std::string& path, const std::vector<std::vector<uint8_t>>& samples) {
  std::string text;
  for (size_t s = 0; s < samples.size(); ++s) {
    if (samples.size() > 1) text += "----- sample " + std::to_string(s + 1) + " -----\n";
    text.append(samples[s].begin(), samples[s].end());
    text += "\n";
  }
  write_bytes(path, text, std::to_string(samples.size()) + " samples");
}

void write_raw_samples(const std::string& path, const std::vector<std::vector<uint8_t>>& samples) {
  std::string bytes;
  for (const auto& s : samples) bytes.append(s.begin(), s.end());
  write_bytes(path, bytes, std::to_string(samples.size()) + " samples (" + std::to_string(bytes.size()) + " bytes)");
}

int default_scale(int width, int height) {
  const int longest = std::max(1, std::max(width, height));
  return std::max(1, (kTargetGridPixels + longest - 1) / longest);
}

Image sample_grid(const ImageSamples& images, int scale) {
  SPT_CHECK(images.originals.empty() || images.originals.size() == images.samples.size(), "got ",
            images.originals.size(), " original images for ", images.samples.size(), " samples");
  SPT_CHECK(scale >= 0, "--scale ", scale, " must be at least 1 (0: automatic)");
  std::vector<Image> cells;
  for (size_t k = 0; k < images.samples.size(); ++k)
    cells.push_back(images.originals.empty() ? images.samples[k]
                                             : completion_cell(images.originals[k], images.samples[k],
                                                               images.prefix_rows));
  const Image grid = image_grid(cells);
  const int factor = scale > 0 ? scale : default_scale(grid.width, grid.height);
  const int64_t longest = int64_t{std::max(grid.width, grid.height)} * factor;
  SPT_CHECK(longest <= kMaxGridPixels, "the grid would be ", longest, " pixels on its longer side (", grid.width,
            "x", grid.height, " at --scale ", factor, "), more than ", kMaxGridPixels, ": lower --scale or --count");
  return upscale_nearest(grid, factor);
}

}  // namespace spt::cli
