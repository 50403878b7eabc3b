// `spt train` configuration end to end through the built binary: --print-config, a run's
// config.json as --config, one geometry rule for flags and files, the optimizer flags,
// defaults in --help, refused ranges and sizes, bounded `spt pattern` work.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

using testing_support::CliResult;
using testing_support::TempDir;

// Runs `spt <args>` in `dir` (after the shell commands `setup`), capturing stdout and stderr.
CliResult spt(const TempDir& dir, const std::string& args, const std::string& setup = "true") {
  return testing_support::run_spt(dir.path(), args, setup);
}

// The pretty JSON that --print-config prints first.
nlohmann::json printed_config(const CliResult& r) {
  return nlohmann::json::parse(r.out.substr(0, r.out.find("\n}\n") + 2));
}

void write_text(const std::string& path, const std::string& text) {
  testing_support::write_bytes(path, std::vector<char>(text.begin(), text.end()));
}

TEST(CliConfig, PrintConfigNeedsNoDataOrOutputAndWritesNothing) {
  TempDir dir("cli-config");
  const CliResult r = spt(dir, "train --preset tiny --beta2 0.95 --eps 1e-6 --beta1 0.8 --print-config");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json config = printed_config(r);
  EXPECT_EQ(config["model"]["layers"], 2);
  EXPECT_EQ(config["train"]["beta1"], 0.8);
  EXPECT_EQ(config["train"]["beta2"], 0.95);
  EXPECT_EQ(config["train"]["eps"], 1e-6);
  EXPECT_NE(r.out.find("parameters: 42624"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("host memory plan (CPU, batch 4, recompute on): weights"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("a CPU plan"), std::string::npos) << r.out;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 2);  // stdout.txt, stderr.txt
  EXPECT_EQ(spt(dir, "train --preset tiny --dry-run").code, 0);
}

// A model that fits at --batch 1 but not at validation's batch says which flag to lower.
TEST(CliConfig, TooLargeForValidationNamesTheEvalBatch) {
  TempDir dir("cli-config");
  const std::string model = "train --layers 8 --width 256 --heads 4 --ctx 262144 --stride 512 --batch 1 --print-config";
  const CliResult wide = spt(dir, model + " --eval-batch 64");
  EXPECT_EQ(wide.code, 1);
  EXPECT_NE(wide.err.find("at batch 64 (validation's --eval-batch; lower it too)"), std::string::npos) << wide.err;
  const CliResult narrow = spt(dir, model + " --eval-batch 1");
  EXPECT_EQ(narrow.err.find("--eval-batch"), std::string::npos) << narrow.err;
}

TEST(CliConfig, ARunsConfigJsonStartsANewRun) {
  TempDir dir("cli-config");
  write_text(dir / "data.txt", std::string(20000, 'a') + std::string(20000, 'b'));
  ASSERT_EQ(spt(dir, "train --preset tiny --steps 2 --eval-batches 1 --data data.txt --out run").code, 0);
  const CliResult again = spt(dir, "train --config run/config.json --print-config");
  ASSERT_EQ(again.code, 0) << again.err;
  const nlohmann::json config = printed_config(again);
  EXPECT_EQ(config["data"]["path"], dir / "data.txt");  // stored absolute by the run
  EXPECT_EQ(config["train"]["steps"], 2);
  const CliResult trained = spt(dir, "train --config run/config.json --steps 1 --out run2");
  EXPECT_EQ(trained.code, 0) << trained.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "run2/checkpoint"));
}

TEST(CliConfig, CtxInAFileResolvesLikeCtxOnTheCommandLine) {
  TempDir dir("cli-config");
  write_text(dir / "ctx.json", R"({"model": {"ctx": 500, "stride": 16}})");
  const CliResult file = spt(dir, "train --preset tiny --config ctx.json --print-config");
  const CliResult flags = spt(dir, "train --preset tiny --ctx 500 --stride 16 --print-config");
  ASSERT_EQ(file.code, 0) << file.err;
  ASSERT_EQ(flags.code, 0) << flags.err;
  EXPECT_EQ(printed_config(file)["model"]["pos_sizes"], nlohmann::json({32, 16}));
  EXPECT_EQ(printed_config(file)["model"], printed_config(flags)["model"]);
  // pos_sizes given at a later level wins; the stride flag re-derives from the file's ctx.
  const CliResult explicit_sizes = spt(dir, "train --config ctx.json --pos-sizes 50,10 --print-config");
  EXPECT_EQ(printed_config(explicit_sizes)["model"]["pos_sizes"], nlohmann::json({50, 10}));
  const CliResult stride = spt(dir, "train --config ctx.json --stride 25 --print-config");
  EXPECT_EQ(printed_config(stride)["model"]["pos_sizes"], nlohmann::json({20, 25}));
}

TEST(CliConfig, BadValuesAndHugeSizesAreOneLineErrors) {
  TempDir dir("cli-config");
  write_text(dir / "data.txt", std::string(20000, 'a'));
  const std::string base = "train --preset tiny --data data.txt --out run ";
  for (const char* flags : {"--weight-decay inf", "--clip nan", "--lr 1e400", "--layers 2147483647",
                                   "--width 1048576 --heads 1", "--batch 2147483647", "--ctx 2147483647",
                                   "--heads 2147483647", "--beta2 1.5", "--eval-batch 0"}) {
    const CliResult r = spt(dir, base + flags);
    EXPECT_EQ(r.code, 1) << flags << ": " << r.err;
    EXPECT_EQ(r.err.rfind("spt: error: ", 0), 0u) << flags << ": " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << flags << ": " << r.err;
    EXPECT_EQ(r.err.find("bad_alloc"), std::string::npos) << flags << ": " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));
}

TEST(CliConfig, AnAddressSpaceLimitIsRefusedBeforeAllocation) {
  TempDir dir("cli-config");
  write_text(dir / "data.txt", std::string(200000, 'a'));
  // Fits the machine's memory, not the 400 MB address-space cap: the plan is refused up
  // front against the cap, never by a std::bad_alloc half way.
  const CliResult r = spt(dir, "train --preset tiny --batch 20000 --data data.txt --out run", "ulimit -v 400000");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("spt: error: training this model (layers 2, width 32", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("of memory spt may use here: lower"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

TEST(CliConfig, DeepOrNonRegularInputsAreErrorsNotCrashesOrHangs) {
  TempDir dir("cli-config");
  write_text(dir / "deep.json", std::string(100000, '[') + std::string(100000, ']'));
  const CliResult deep = spt(dir, "train --config deep.json --data x --out o");
  EXPECT_EQ(deep.code, 1);
  EXPECT_NE(deep.err.find("nested deeper than 64"), std::string::npos) << deep.err;
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);
  const CliResult fifo = spt(dir, "train --preset tiny --data fifo --out o");
  EXPECT_EQ(fifo.code, 1);  // 124 would be the timeout
  EXPECT_NE(fifo.err.find("is a FIFO"), std::string::npos) << fifo.err;
  const CliResult dir_config = spt(dir, "train --config . --print-config");
  EXPECT_NE(dir_config.err.find("cannot read '.': it is a directory"), std::string::npos) << dir_config.err;
}

TEST(CliConfig, HelpShowsDefaultsAndPresetsShowTraining) {
  TempDir dir("cli-config");
  EXPECT_NE(spt(dir, "train --help").out.find("--lr FLOAT=0.001"), std::string::npos);
  EXPECT_NE(spt(dir, "train --help").out.find("--eval-batch INT=8"), std::string::npos);
  EXPECT_NE(spt(dir, "eval --help").out.find("--split TEXT=test"), std::string::npos);
  EXPECT_NE(spt(dir, "sample --help").out.find("--temperature FLOAT=1"), std::string::npos);
  EXPECT_NE(spt(dir, "pattern --help").out.find("--ctx INT=1024"), std::string::npos);
  const CliResult presets = spt(dir, "info --presets");
  EXPECT_NE(presets.out.find("train: --batch 32 --accumulate 1 --steps 1600 --lr 0.003"), std::string::npos)
      << presets.out;
  EXPECT_NE(presets.out.find("--pos-sizes 28,28,1"), std::string::npos);
  EXPECT_NE(presets.out.find("--ema 0.999 --recompute false"), std::string::npos) << presets.out;
  EXPECT_NE(presets.out.find("why: assumes 2.3M pixels/s"), std::string::npos) << presets.out;
}

TEST(CliConfig, GpuPresetsPrintTheirConfig) {
  TempDir dir("cli-config");
  const struct {
    const char* name;
    int layers, width, ctx;
    const char* pattern;
  } cases[] = {{"mnist", 8, 384, 784, "strided"}, {"fashion", 8, 512, 784, "strided"},
               {"kjv", 12, 512, 1024, "fixed"}, {"gcide", 12, 512, 1024, "fixed"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const CliResult r = spt(dir, std::string("train --preset ") + c.name + " --print-config");
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json config = printed_config(r);
    EXPECT_EQ(config["model"]["layers"], c.layers);
    EXPECT_EQ(config["model"]["width"], c.width);
    EXPECT_EQ(config["model"]["ctx"], c.ctx);
    EXPECT_EQ(config["model"]["pattern"], c.pattern);
    EXPECT_EQ(config["train"]["recompute"], false);
    EXPECT_NE(r.out.find("parameters: "), std::string::npos) << r.out;
  }
  // The ablation's overrides resolve on top of a GPU preset.
  const CliResult dense = spt(dir, "train --preset mnist --pattern dense --ema 0 --steps 100 --print-config");
  ASSERT_EQ(dense.code, 0) << dense.err;
  EXPECT_EQ(printed_config(dense)["model"]["pattern"], "dense");
  EXPECT_FALSE(printed_config(dense)["train"].contains("ema"));
}

TEST(CliConfig, PatternWorkIsBounded) {
  TempDir dir("cli-config");
  const CliResult png = spt(dir, "pattern --ctx 1073741824 --png p.png");
  EXPECT_EQ(png.code, 1);
  EXPECT_NE(png.err.find("--crop N"), std::string::npos) << png.err;
  const CliResult stats = spt(dir, "pattern --ctx 1073741824");
  EXPECT_EQ(stats.code, 1);
  EXPECT_NE(stats.err.find("raise --block"), std::string::npos) << stats.err;
  EXPECT_EQ(spt(dir, "pattern --ctx 1073741824 --png p.png --crop 256").code, 0);
  // Above its range a value is refused, not clamped.
  const CliResult crop = spt(dir, "pattern --ctx 64 --png p.png --crop 65");
  EXPECT_EQ(crop.code, 1);
  EXPECT_NE(crop.err.find("crop 65 must be in [0, T = 64]"), std::string::npos) << crop.err;
}

}  // namespace
}  // namespace spt
