#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace spt {
namespace {

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kTrainColour{31, 119, 180};
constexpr Rgb kValidColour{255, 127, 14};
constexpr Rgb kInk{40, 40, 40};
constexpr Rgb kGridColour{225, 225, 225};
constexpr int kGlyphScale = 2;  // each font pixel is 2x2 picture pixels
constexpr int kAdvance = 4 * kGlyphScale;

// A 3x5 pixel font for the labels: five rows per glyph, bit 2 is the left column.
struct Glyph {
  char c;
  uint8_t rows[5];
};
constexpr Glyph kFont[] = {
    {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
    {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
    {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {'-', {0, 0, 7, 0, 0}},
    {'a', {0, 3, 5, 5, 3}}, {'b', {4, 6, 5, 5, 6}}, {'d', {1, 3, 5, 5, 3}}, {'e', {0, 2, 7, 4, 3}},
    {'i', {2, 0, 2, 2, 2}}, {'l', {6, 2, 2, 2, 7}}, {'n', {0, 6, 5, 5, 5}}, {'p', {0, 6, 5, 6, 4}},
    {'r', {0, 5, 6, 4, 4}}, {'s', {0, 3, 6, 1, 6}}, {'t', {2, 7, 2, 2, 1}}, {'v', {0, 5, 5, 5, 2}},
};

class Canvas {
 public:
  Canvas(int width, int height) : image_{width, height, 3, std::vector<uint8_t>(size_t(width) * height * 3, 255)} {}
  void dot(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= image_.width || y >= image_.height) return;
    uint8_t* p = &image_.pixels[(size_t(y) * image_.width + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void square(int x, int y, int radius, Rgb c) {
    for (int dy = -radius; dy <= radius; ++dy)
      for (int dx = -radius; dx <= radius; ++dx) dot(x + dx, y + dy, c);
  }
  // A line two pixels thick, stepped along its longer axis.
  void line(double x0, double y0, double x1, double y1, Rgb c) {
    const int n = static_cast<int>(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0))) + 1;
    for (int i = 0; i <= n; ++i) {
      const double f = static_cast<double>(i) / n;
      const int x = static_cast<int>(std::lround(x0 + f * (x1 - x0))), y = static_cast<int>(std::lround(y0 + f * (y1 - y0)));
      dot(x, y, c), dot(x + 1, y, c), dot(x, y + 1, c);
    }
  }
  void text(int x, int y, const std::string& s, Rgb c) {
    for (char ch : s) {
      for (const Glyph& g : kFont)
        if (g.c == ch)
          for (int row = 0; row < 5; ++row)
            for (int col = 0; col < 3; ++col)
              if (g.rows[row] >> (2 - col) & 1)
                for (int k = 0; k < kGlyphScale * kGlyphScale; ++k)
                  dot(x + col * kGlyphScale + k % kGlyphScale, y + row * kGlyphScale + k / kGlyphScale, c);
      x += kAdvance;
    }
  }
  Image take() { return std::move(image_); }

 private:
  Image image_;
};

int text_width(const std::string& s) { return static_cast<int>(s.size()) * kAdvance - kGlyphScale; }

// Round tick spacing (1, 2 or 5 times a power of ten) giving at most `most` intervals.
double tick_step(double span, int most) {
  const double raw = span / most;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw) return m * power;
  return 10 * power;
}

std::string tick_label(double value, double step) {
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, std::fabs(value) < step * 1e-6 ? 0.0 : value);
  return buffer;
}

}  // namespace

LossCurves read_loss_curves(const std::string& metrics_path) {
  LossCurves curves;
  std::ifstream in(metrics_path);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (!row.is_object() || !row.contains("step") || !row["step"].is_number()) continue;
    const int64_t step = row["step"].get<int64_t>();
    for (auto [key, curve] : {std::pair{"bits", &curves.train}, std::pair{"valid_bits", &curves.valid}})
      if (row.contains(key) && row[key].is_number() && std::isfinite(row[key].get<double>())) {
        // A run resumed after a crash logs its unsaved steps again: the later rows replace them.
        while (!curve->empty() && curve->back().step >= step) curve->pop_back();
        curve->push_back({step, row[key].get<double>()});
      }
  }
  return curves;
}

Image render_loss_plot(const LossCurves& curves, int width, int height) {
  SPT_CHECK(width >= 160 && height >= 120, "loss plot size ", width, "x", height, " must be at least 160x120");
  Canvas canvas(width, height);
  const int left = 56, right = width - 16, top = 28, bottom = height - 36;
  int64_t step_lo = 0, step_hi = 1;
  double bits_lo = 0, bits_hi = 1;
  bool any = false;
  for (const auto* curve : {&curves.train, &curves.valid})
    for (const CurvePoint& p : *curve) {
      step_hi = any ? std::max(step_hi, p.step) : p.step;
      step_lo = any ? std::min(step_lo, p.step) : p.step;
      bits_hi = any ? std::max(bits_hi, p.bits) : p.bits;
      bits_lo = any ? std::min(bits_lo, p.bits) : p.bits;
      any = true;
    }
  if (step_hi <= step_lo) step_hi = step_lo + 1;
  if (bits_hi - bits_lo < 1e-6) bits_hi = bits_lo + 1e-3, bits_lo -= 1e-3;
  const double pad = 0.05 * (bits_hi - bits_lo);
  bits_lo -= pad, bits_hi += pad;
  auto px = [&](double step) { return left + (step - step_lo) / double(step_hi - step_lo) * (right - left); };
  auto py = [&](double bits) { return bottom - (bits - bits_lo) / (bits_hi - bits_lo) * (bottom - top); };
  const double ystep = tick_step(bits_hi - bits_lo, 6), xstep = tick_step(double(step_hi - step_lo), 6);
  for (double v = std::ceil(bits_lo / ystep) * ystep; v <= bits_hi; v += ystep) {
    const int y = static_cast<int>(std::lround(py(v)));
    for (int x = left; x <= right; ++x) canvas.dot(x, y, kGridColour);
    const std::string label = tick_label(v, ystep);
    canvas.text(left - 6 - text_width(label), y - 5, label, kInk);
  }
  for (double v = std::ceil(step_lo / xstep) * xstep; v <= step_hi; v += xstep) {
    const int x = static_cast<int>(std::lround(px(v)));
    for (int y = bottom; y <= bottom + 4; ++y) canvas.dot(x, y, kInk);
    const std::string label = tick_label(v, std::max(1.0, xstep));
    canvas.text(x - text_width(label) / 2, bottom + 8, label, kInk);
  }
  canvas.line(left, top, left, bottom, kInk);
  canvas.line(left, bottom, right, bottom, kInk);
  canvas.text(right - text_width("step"), bottom + 22, "step", kInk);
  canvas.text(4, 8, "bits", kInk);
  canvas.line(left + 20, 14, left + 44, 14, kTrainColour);
  canvas.text(left + 50, 9, "train", kInk);
  canvas.line(left + 120, 14, left + 144, 14, kValidColour);
  canvas.text(left + 150, 9, "valid", kInk);
  for (size_t i = 1; i < curves.train.size(); ++i)
    canvas.line(px(curves.train[i - 1].step), py(curves.train[i - 1].bits), px(curves.train[i].step),
                py(curves.train[i].bits), kTrainColour);
  for (size_t i = 0; i < curves.valid.size(); ++i) {
    const int x = static_cast<int>(std::lround(px(curves.valid[i].step)));
    const int y = static_cast<int>(std::lround(py(curves.valid[i].bits)));
    canvas.square(x, y, 2, kValidColour);
    if (i > 0) canvas.line(px(curves.valid[i - 1].step), py(curves.valid[i - 1].bits), x, y, kValidColour);
  }
  return canvas.take();
}

std::string update_loss_plot(const std::string& metrics_path, const std::string& png_path) {
  try {
    write_png(png_path, render_loss_plot(read_loss_curves(metrics_path)));
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace spt
