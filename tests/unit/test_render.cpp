// Pattern pictures: each cell's colour says which parts allow the pair.
#include <gtest/gtest.h>

#include "brute_pattern.h"
#include "pattern/render.h"

namespace spt {
namespace {

TEST(PatternRender, CellsShowTheParts) {
  const PatternSpec spec{PatternKind::strided, 4, 1, 1, CombineMode::merged, 2};
  const Pattern pattern(spec);
  RenderOptions options;
  options.T = 32;
  const PatternPicture picture = render_pattern(pattern, options);
  const int zoom = 8;  // cells are drawn at most 8 pixels wide
  ASSERT_EQ(picture.height, 32 * zoom);
  ASSERT_EQ(picture.width, 2 * 32 * zoom + 8);
  EXPECT_TRUE(picture.note.empty());
  for (int i = 0; i < 32; ++i)
    for (int j = 0; j < 32; ++j) {
      const uint8_t* p = &picture.rgb[((i * zoom + zoom / 2) * picture.width + j * zoom + zoom / 2) * 3];
      const bool a1 = brute_a1(spec.kind, 4, i, j), a2 = brute_a2(spec.kind, 4, 1, 1, 0, i, j);
      if (j > i) {
        EXPECT_EQ(p[0], 235) << i << "," << j;  // future: light grey
        continue;
      }
      if (a1 && !a2) {
        EXPECT_EQ(p[2], 180) << i << "," << j;  // blue
      } else if (a2 && !a1) {
        EXPECT_EQ(p[0], 255) << i << "," << j;  // orange
      } else if (!a1 && !a2) {
        EXPECT_EQ(p[1], 255) << i << "," << j;  // white
      }
    }
}

TEST(PatternRender, LongContextIsDownscaledAndSaysSo) {
  const Pattern pattern({PatternKind::fixed, 128, 32, 1, CombineMode::merged, 1});
  RenderOptions options;
  options.T = 4096;
  options.block = 64;
  const PatternPicture picture = render_pattern(pattern, options);
  EXPECT_EQ(picture.width, 1024);
  EXPECT_NE(picture.note.find("downscaled 4x"), std::string::npos) << picture.note;
  options.crop = 256;
  const PatternPicture crop = render_pattern(pattern, options);
  EXPECT_NE(crop.note.find("first 256 of 4096"), std::string::npos) << crop.note;
}

}  // namespace
}  // namespace spt
