// Config resolution and validation: the --config file (a run's own config.json included),
// the geometry rule, depth-limited JSON, range checks and the size of a model before it
// is built (parameter count and host memory plan against the real Model).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/json_limits.h"
#include "model/config_json.h"
#include "model/model.h"
#include "model/model_size.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

using testing_support::error_of;
using testing_support::TempDir;

void write_text(const std::string& path, const std::string& text) {
  testing_support::write_bytes(path, std::vector<char>(text.begin(), text.end()));
}

struct Loaded {
  ModelConfig model;
  TrainConfig train;
  DataConfig data;
};

Loaded load(const std::string& json) {
  TempDir dir("config");
  write_text(dir / "c.json", json);
  Loaded out;
  load_config_file(dir / "c.json", out.model, out.train, out.data);
  return out;
}

TEST(ConfigFile, RunConfigJsonWithItsDataSectionLoads) {
  // What `spt train` writes into a run directory, token counts included.
  const Loaded got = load(R"({"model": {"layers": 3, "ctx": 64, "stride": 8, "pos_sizes": [8, 8]},
      "train": {"batch": 2, "beta2": 0.95},
      "data": {"format": "idx", "path": "data/fm", "train_tokens": 10, "valid_tokens": 2, "test_tokens": 3}})");
  EXPECT_EQ(got.model.layers, 3);
  EXPECT_EQ(got.train.batch, 2);
  EXPECT_EQ(got.train.beta2, 0.95);
  EXPECT_EQ(got.data.format, "idx");
  EXPECT_EQ(got.data.path, "data/fm");
}

TEST(ConfigFile, UnknownKeysAreStillRefusedInEverySection) {
  EXPECT_NE(error_of([] { load(R"({"data": {"format": "bytes", "shuffle": true}})"); }).find("unknown key 'shuffle'"),
            std::string::npos);
  EXPECT_NE(error_of([] { load(R"({"optim": {}})"); }).find("unknown key 'optim'"), std::string::npos);
  EXPECT_NE(error_of([] { load(R"({"model": {"depth": 3}})"); }).find("unknown key 'depth'"), std::string::npos);
}

TEST(ConfigFile, CtxOrStrideRederiveTextPositionsUnlessPosSizesIsGiven) {
  EXPECT_EQ(load(R"({"model": {"ctx": 500, "stride": 16}})").model.pos_sizes, (std::vector<int>{32, 16}));
  EXPECT_EQ(load(R"({"model": {"stride": 64}})").model.pos_sizes, (std::vector<int>{16, 64}));  // T 1024
  EXPECT_EQ(load(R"({"model": {"ctx": 500, "pos_sizes": [50, 10]}})").model.pos_sizes, (std::vector<int>{50, 10}));
  // Image tables are never re-derived.
  ModelConfig image;
  image.pos_sizes = {28, 28, 1};
  update_from_json(image, nlohmann::json{{"ctx", 784}}, "test");
  EXPECT_EQ(image.pos_sizes, (std::vector<int>{28, 28, 1}));
}

TEST(ConfigFile, BadFilesAreOneLineErrorsNamingTheFile) {
  TempDir dir("config");
  ModelConfig m;
  TrainConfig t;
  DataConfig d;
  EXPECT_NE(error_of([&] { load_config_file(dir.path(), m, t, d); }).find("is a directory"), std::string::npos);
  EXPECT_NE(error_of([&] { load_config_file(dir / "missing.json", m, t, d); }).find("No such file"), std::string::npos);
  const std::string long_value = R"({"model": {"layers": ")" + std::string(10000, 'x') + R"("}})";
  const std::string message = error_of([&] { load(long_value); });
  EXPECT_NE(message.find("'layers' must be an integer"), std::string::npos) << message;
  EXPECT_LT(message.size(), 300u);  // the value is cut short
}

TEST(ConfigFile, NumbersAreTypeAndRangeCheckedAsRead) {
  // Each of these nlohmann would convert without a word (to 2, 1, 2, 2^64-1, infinity).
  for (const auto& [json, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"({"model": {"layers": 4294967298}})", "'layers' must be an integer of 32 bits, got 4294967298"},
           {R"({"model": {"summary": true}})", "'summary' must be an integer of 32 bits, got true"},
           {R"({"model": {"width": 2.5}})", "'width' must be an integer of 32 bits, got 2.5"},
           {R"({"model": {"pos_sizes": [8, 4294967304]}})", "'pos_sizes' must be a list of integers"},
           {R"({"model": {"half_qk": 1}})", "'half_qk' must be true or false"},
           {R"({"train": {"seed": -1}})", "'seed' must be a non-negative integer"},
           {R"({"train": {"steps": 18446744073709551615}})", "'steps' must be an integer of 64 bits"},
           {R"({"train": {"lr": 1e400}})", "c.json': not valid JSON ([json.exception.out_of_range.406] number overflow parsing '1e400')"},
           {R"({"train": {"lr": true}})", "'lr' must be a finite number"}}) {
    const std::string message = error_of([&] { load(json); });
    EXPECT_NE(message.find(expected), std::string::npos) << json << ": " << message;
  }
  const Loaded wide = load(R"({"model": {"ff_ratio": 2}, "train": {"steps": 4294967298, "seed": 18446744073709551615}})");
  EXPECT_EQ(wide.model.ff_ratio, 2.0);
  EXPECT_EQ(wide.train.steps, int64_t{4294967298});
  EXPECT_EQ(wide.train.seed, std::numeric_limits<uint64_t>::max());
}

TEST(JsonLimits, DeepNestingIsRefusedBeforeParsing) {
  const int deep = 100000;
  const std::string text = std::string(deep, '[') + std::string(deep, ']');
  EXPECT_NE(error_of([&] { parse_json_limited(text, "x.json"); }).find("x.json: JSON nested deeper than 64"),
            std::string::npos);
  const std::string at_limit = std::string(64, '[') + std::string(64, ']');
  EXPECT_NO_THROW(parse_json_limited(at_limit, "x.json"));
  const std::string over = std::string(65, '[') + std::string(65, ']');
  EXPECT_NE(error_of([&] { parse_json_limited(over, "x.json"); }).find("nested deeper than 64"), std::string::npos);
  // Brackets inside strings do not count.
  EXPECT_NO_THROW(parse_json_limited(R"({"a": ")" + std::string(1000, '[') + R"("})", "x.json"));
  EXPECT_NE(error_of([] { parse_json_limited("{", "x.json"); }).find("x.json: not valid JSON"), std::string::npos);
}

TEST(ConfigFile, DeeplyNestedConfigIsAnErrorNotACrash) {
  const int deep = 100000;
  const std::string value = std::string(deep, '[') + std::string(deep, ']');
  EXPECT_NE(error_of([&] { load(value); }).find("nested deeper than 64"), std::string::npos);
  EXPECT_NE(error_of([&] { load(R"({"model": {"layers": )" + value + "}}"); }).find("nested deeper than 64"),
            std::string::npos);
}

TEST(ConfigValidate, NonFiniteAndOutOfRangeValuesAreRefused) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  for (double bad : {inf, -1.0, nan, 2000.0}) {  // 2000 * lr 1e-3 >= 1
    TrainConfig t;
    t.weight_decay = bad;
    EXPECT_NE(error_of([&] { validate(t); }).find("--weight-decay"), std::string::npos) << bad;
  }
  TrainConfig t;
  t.clip = inf;
  EXPECT_NE(error_of([&] { validate(t); }).find("--clip"), std::string::npos);
  t = TrainConfig{};
  t.eps = inf;
  EXPECT_NE(error_of([&] { validate(t); }).find("--eps"), std::string::npos);
  t = TrainConfig{};
  t.beta2 = 1.0;
  EXPECT_NE(error_of([&] { validate(t); }).find("--beta2"), std::string::npos);
  ModelConfig m;
  m.dropout = nan;
  EXPECT_NE(error_of([&] { validate(m); }).find("--dropout"), std::string::npos);
  m = ModelConfig{};
  m.ff_ratio = inf;
  EXPECT_NE(error_of([&] { validate(m); }).find("--ff-ratio"), std::string::npos);
}

// The gradient bucket size is a training field: checked, and written to config JSON when it
// is not the default (so checkpoints from before it existed still hold every written key).
TEST(ConfigValidate, GradientBucketSizeIsCheckedAndStored) {
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    TrainConfig t;
    t.bucket_mib = bad;
    EXPECT_NE(error_of([&] { validate(t); }).find("--bucket-mib"), std::string::npos) << bad;
  }
  TrainConfig t;
  EXPECT_EQ(t.bucket_mib, 25.0);
  EXPECT_FALSE(to_json(t).contains("bucket_mib"));
  t.bucket_mib = 0;
  EXPECT_EQ(to_json(t).at("bucket_mib"), 0.0);
  EXPECT_EQ(load(R"({"train": {"bucket_mib": 0.5}})").train.bucket_mib, 0.5);
}

TEST(ConfigValidate, FieldsOnlyTheFixedPatternUsesAreStillChecked) {
  ModelConfig m;  // strided
  m.summary = -1;
  EXPECT_NE(error_of([&] { validate(m); }).find("summary -1"), std::string::npos);
  m = ModelConfig{};
  m.summary_blocks = std::numeric_limits<int>::max();
  EXPECT_NE(error_of([&] { validate(m); }).find("summary_blocks 2147483647"), std::string::npos);
  m = ModelConfig{};
  m.stride = m.ctx + 1;
  EXPECT_NE(error_of([&] { validate(m); }).find("must be in [1, ctx"), std::string::npos);
}

TEST(ConfigValidate, PositionTablesLargerThanTheContextAreRefused) {
  ModelConfig m;
  m.ctx = 64;
  m.stride = 8;
  m.pos_sizes = {65536, 65536};  // fits memory, but no position reaches most rows
  EXPECT_NE(error_of([&] { validate(m); }).find("position table size 65536 exceeds context 64"), std::string::npos);
  m.pos_sizes = {8, 8, 1};
  EXPECT_EQ(error_of([&] { validate(m); }), "");
}

TEST(ConfigValidate, ModelsLargerThanMemoryAreRefusedBeforeAllocation) {
  ModelConfig m;
  m.layers = std::numeric_limits<int>::max();
  EXPECT_NE(error_of([&] { validate(m); }).find("of memory spt may use here"), std::string::npos);
  m = ModelConfig{};
  m.width = 1 << 20;
  EXPECT_NE(error_of([&] { validate(m); }).find("of memory spt may use here"), std::string::npos);
  m = ModelConfig{};
  m.ff_ratio = 1e6;  // the refusal names the fields that make the model large
  EXPECT_NE(error_of([&] { validate(m); }).find("(layers 4, width 256, ff_ratio 1e+06, pos_sizes [32, 32])"),
            std::string::npos);
  m = ModelConfig{};
  m.width = std::numeric_limits<int>::max();
  m.heads = 1;
  EXPECT_NE(error_of([&] { validate(m); }).find("feed-forward width"), std::string::npos);
  m = ModelConfig{};
  m.pos_sizes = {std::numeric_limits<int>::max(), std::numeric_limits<int>::max(), std::numeric_limits<int>::max()};
  EXPECT_FALSE(error_of([&] { validate(m); }).empty());  // no overflow into a bogus product
}

TEST(ModelSize, ParameterCountMatchesTheBuiltModel) {
  ModelConfig a;
  a.layers = 2;
  a.width = 36;
  a.heads = 3;
  a.ctx = 50;
  a.stride = 7;
  a.pos_sizes = text_pos_sizes(a.ctx, a.stride);
  ModelConfig b = a;
  b.half_qk = true;
  b.heads = 2;
  b.ff_ratio = 2.5;
  b.pos_sizes = {5, 5, 2};
  for (const ModelConfig& c : {a, b})
    EXPECT_EQ(parameter_count(c), static_cast<double>(Model(c).params().total()));
}

TEST(ModelSize, HostMemoryPlanMatchesTheModelBuffers) {
  ModelConfig c;
  c.layers = 3;
  c.width = 32;
  c.heads = 2;
  c.ctx = 24;
  c.stride = 4;
  c.pos_sizes = text_pos_sizes(c.ctx, c.stride);
  const int B = 3;
  const std::vector<uint8_t> tokens(B * c.ctx, 7);
  for (bool recompute : {true, false}) {
    Model model(c);
    model.recompute = recompute;
    model.init(1);
    model.forward_backward(tokens.data(), B, DropoutContext{}, 1.0f);
    const HostMemoryPlan plan = host_memory_plan(c, B, true, recompute);
    EXPECT_EQ(plan.activations, static_cast<double>(model.activation_bytes())) << recompute;
    EXPECT_EQ(plan.weights, 4.0 * model.weights().size());
    EXPECT_EQ(plan.optimizer, 8.0 * model.weights().size());
  }
  Model model(c);
  std::vector<float> losses(B * c.ctx);
  model.evaluate(tokens.data(), B, losses.data());
  EXPECT_EQ(host_memory_plan(c, B, false, true).activations, static_cast<double>(model.activation_bytes()));
  EXPECT_NE(error_of([&] { check_memory_plan(host_memory_plan(c, B, true, true), 1000, "training"); })
                .find("training needs"),
            std::string::npos);
}

}  // namespace
}  // namespace spt
