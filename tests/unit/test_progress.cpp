// Progress lines fit the terminal, dropping the least important fields first, and a long
// evaluation reports its batches and stops between them when asked.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/rng.h"
#include "data/dataset.h"
#include "model/model.h"
#include "train/evaluator.h"
#include "train/progress.h"

namespace spt {
namespace {

TEST(Progress, FitLineDropsTheLeastImportantFieldsFirst) {
  const std::vector<LineField> fields = {{"step 10/100", 9}, {"loss 1.2345", 5}, {"bits 1.7810", 8},
                                         {"lr 3.00e-04", 1}, {"12345 tok/s", 3}, {"ETA 5m00s", 7}};
  const std::string wide = fit_line(fields, 200);
  EXPECT_EQ(wide, "step 10/100  loss 1.2345  bits 1.7810  lr 3.00e-04  12345 tok/s  ETA 5m00s");
  EXPECT_EQ(fit_line(fields, 70), "step 10/100  loss 1.2345  bits 1.7810  12345 tok/s  ETA 5m00s");
  EXPECT_EQ(fit_line(fields, 50), "step 10/100  loss 1.2345  bits 1.7810  ETA 5m00s");
  EXPECT_EQ(fit_line(fields, 40), "step 10/100  bits 1.7810  ETA 5m00s");
  EXPECT_EQ(fit_line(fields, 8), "step 10");  // only the most important field, cut
  for (int width = 1; width < 100; ++width) EXPECT_LT(static_cast<int>(fit_line(fields, width).size()), std::max(2, width));
}

TEST(Progress, TerminalWidthFallsBackToColumns) {
  setenv("COLUMNS", "57", 1);
  EXPECT_EQ(terminal_width(-1), 57);  // not a terminal: $COLUMNS
  unsetenv("COLUMNS");
  EXPECT_EQ(terminal_width(-1), 80);
}

TEST(Progress, PhaseLineFitsAndCounts) {
  PhaseProgress progress("validation", 400, "windows");
  const std::string line = progress.line(100, 2.0, 200);
  EXPECT_NE(line.find("validation"), std::string::npos);
  EXPECT_NE(line.find("100/400 windows"), std::string::npos);
  EXPECT_NE(line.find("25%"), std::string::npos);
  EXPECT_NE(line.find("ETA 6s"), std::string::npos);  // 300 windows at 50 per second
  EXPECT_LE(progress.line(100, 2.0, 30).size(), 29u);
}

TokenSplit text_split(int64_t size) {
  TokenSplit split;
  split.name = "valid";
  for (int64_t i = 0; i < size; ++i) split.tokens.push_back(static_cast<uint8_t>('a' + uniform_int(2, i, 26)));
  return split;
}

ModelConfig eval_model() {
  ModelConfig c;
  c.layers = 1;
  c.width = 16;
  c.heads = 2;
  c.ctx = 16;
  c.stride = 4;
  c.pos_sizes = {4, 4};
  return c;
}

TEST(Evaluator, StopsBetweenBatchesAndReportsThem) {
  Model model(eval_model());
  model.init(1);
  const TokenSplit split = text_split(16 * 20);
  std::vector<int64_t> reported;
  EvalHooks hooks;
  hooks.on_batch = [&](int64_t done, int64_t total) {
    reported.push_back(done);
    EXPECT_EQ(total, 20);
  };
  hooks.should_stop = [&] { return reported.size() == 2; };
  const EvalResult part = evaluate_split(model, split, 3, 0, hooks);
  EXPECT_TRUE(part.interrupted);
  EXPECT_EQ(reported, (std::vector<int64_t>{3, 6}));
  EXPECT_EQ(part.windows, 6);
  EXPECT_EQ(part.split_windows, 20);
  const EvalResult whole = evaluate_split(model, split, 3, 0);
  EXPECT_FALSE(whole.interrupted);
  EXPECT_EQ(whole.windows, 20);
  EXPECT_EQ(whole.split_windows, 20);
}

TEST(Evaluator, CoverageNamesTheBoundAndTheWayToTheWholeSplit) {
  EvalResult r;
  r.tokens = 1600, r.windows = 100, r.split_windows = 4903, r.seconds = 3;
  EXPECT_EQ(describe_coverage(r, "--eval-batches"),
            "over 1600 tokens (100 of 4903 windows; --eval-batches 0 for all) (3s)");
  r.split_windows = 100;
  EXPECT_EQ(describe_coverage(r, "--eval-batches"), "over 1600 tokens (3s)");
}

}  // namespace
}  // namespace spt
