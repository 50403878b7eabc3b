// The loss curve a run writes next to its metrics log at every validation: training bits
// (blue) and validation bits (orange, with dots) against the step, on axes with tick
// labels, as a PNG drawn with the project's own PNG writer (no plotting library needed).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/png.h"

namespace spt {

struct CurvePoint {
  int64_t step = 0;
  double bits = 0;
};

struct LossCurves {
  std::vector<CurvePoint> train;  // "bits" rows of metrics.jsonl
  std::vector<CurvePoint> valid;  // "valid_bits" rows
};

// Reads the curves from a metrics log (one JSON object per line); unreadable lines and
// non-finite values are skipped, so a log cut by a crash still plots.
LossCurves read_loss_curves(const std::string& metrics_path);

// An RGB picture of `width` x `height` pixels (at least 160 x 120).
Image render_loss_plot(const LossCurves& curves, int width = 640, int height = 400);

// Reads `metrics_path` and writes the plot to `png_path` atomically (temporary file,
// fsync, rename). Returns an empty string, or why it could not (training goes on).
std::string update_loss_plot(const std::string& metrics_path, const std::string& png_path);

}  // namespace spt
