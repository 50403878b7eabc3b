// The loss curve written next to the metrics log: read from the log, drawn in the two
// curve colours on white, and written as a PNG.
#include <gtest/gtest.h>
#include <png.h>

#include <fstream>

#include "temp_dir.h"
#include "train/loss_plot.h"

namespace spt {
namespace {

int count_colour(const Image& image, uint8_t r, uint8_t g, uint8_t b) {
  int n = 0;
  for (size_t i = 0; i + 2 < image.pixels.size(); i += 3)
    n += image.pixels[i] == r && image.pixels[i + 1] == g && image.pixels[i + 2] == b;
  return n;
}

TEST(LossPlot, ReadsTheCurvesAndKeepsTheLatestOfRepeatedSteps) {
  testing_support::TempDir dir("loss-plot");
  std::ofstream(dir / "metrics.jsonl") << R"({"step":1,"loss":5.5,"bits":7.9}
{"step":2,"loss":5.0,"bits":7.2}
{"step":2,"valid_bits":7.4,"valid_tokens":100}
not json
{"step":3,"loss":4.0,"bits":5.8}
{"step":3,"loss":4.1,"bits":5.9}
{"step":4,"skipped":true}
)";
  const LossCurves curves = read_loss_curves(dir / "metrics.jsonl");
  ASSERT_EQ(curves.train.size(), 3u);
  EXPECT_EQ(curves.train[2].step, 3);
  EXPECT_DOUBLE_EQ(curves.train[2].bits, 5.9);  // a replayed step replaces the earlier row
  ASSERT_EQ(curves.valid.size(), 1u);
  EXPECT_DOUBLE_EQ(curves.valid[0].bits, 7.4);
}

TEST(LossPlot, DrawsBothCurvesAndWritesAPng) {
  LossCurves curves;
  for (int s = 1; s <= 50; ++s) curves.train.push_back({s, 8.0 - s * 0.05});
  curves.valid = {{25, 7.0}, {50, 6.0}};
  const Image image = render_loss_plot(curves, 320, 200);
  ASSERT_EQ(image.width, 320);
  ASSERT_EQ(image.height, 200);
  EXPECT_GT(count_colour(image, 31, 119, 180), 100);  // training, blue
  EXPECT_GT(count_colour(image, 255, 127, 14), 30);   // validation, orange
  EXPECT_GT(count_colour(image, 255, 255, 255), 320 * 200 / 2);
  EXPECT_NO_THROW(render_loss_plot(LossCurves{}));  // an empty log still draws axes

  testing_support::TempDir dir("loss-plot-png");
  std::ofstream(dir / "metrics.jsonl") << "{\"step\":1,\"bits\":8}\n{\"step\":1,\"valid_bits\":7.5}\n";
  EXPECT_EQ(update_loss_plot(dir / "metrics.jsonl", dir / "loss.png"), "");
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&png, (dir / "loss.png").c_str()));
  EXPECT_EQ(png.width, 640u);
  EXPECT_EQ(png.height, 400u);
  png_image_free(&png);
  EXPECT_NE(update_loss_plot(dir / "metrics.jsonl", dir / "missing-dir/loss.png"), "");
}

}  // namespace
}  // namespace spt
