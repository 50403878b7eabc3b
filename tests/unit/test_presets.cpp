// The presets: every one validates, and the paper's raw-audio models have the parameter
// counts the paper reports (152M at 65,536 samples, 25M at 262,144, 3M at 1,048,576),
// within 5% (the paper rounds them).
#include <gtest/gtest.h>

#include <cmath>

#include "model/model.h"
#include "model/presets.h"

namespace spt {
namespace {

TEST(Presets, EveryPresetValidates) {
  for (const Preset& p : presets()) {
    SCOPED_TRACE(p.name);
    EXPECT_NO_THROW(validate(p.model));
    EXPECT_NO_THROW(validate(p.train));
  }
}

TEST(Presets, AudioModelsMatchThePapersParameterCounts) {
  const struct {
    const char* name;
    double paper_params;
    int ctx;
  } cases[] = {{"audio-65k", 152e6, 65536}, {"audio-262k", 25e6, 262144}, {"audio-1m", 3e6, 1048576}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Preset& p = find_preset(c.name);
    EXPECT_EQ(p.model.ctx, c.ctx);
    EXPECT_EQ(p.model.pattern, "strided");
    EXPECT_EQ(p.model.sample_rate, 12000);
    const double params = static_cast<double>(model_param_table(p.model).total());
    EXPECT_LT(std::abs(params - c.paper_params) / c.paper_params, 0.05) << params << " parameters";
  }
}

}  // namespace
}  // namespace spt
