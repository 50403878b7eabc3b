// `spt pattern` end to end: runs the built binary and checks its mask dump against the
// brute-force definitions, its statistics against BlockLayout, its PNG and its errors.
#include <gtest/gtest.h>
#include <png.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "brute_pattern.h"
#include "pattern/block_layout.h"

namespace spt {
namespace {

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

class CliPattern : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::filesystem::temp_directory_path() / "spt_cli_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // Runs `spt pattern <args>` with stdout and stderr captured in files.
  RunResult run(const std::string& args) const {
    const std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
    const std::string command = std::string(SPT_BINARY) + " pattern " + args + " >" + out + " 2>" + err;
    const int status = std::system(command.c_str());
    RunResult result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = slurp(out);
    result.err = slurp(err);
    return result;
  }

  std::string dir_;
};

int count_lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

std::string spec_flags(const PatternSpec& s) {
  std::ostringstream flags;
  flags << "--pattern " << to_string(s.kind) << " --stride " << s.stride << " --summary " << s.summary
        << " --summary-blocks " << s.summary_blocks << " --mode " << to_string(s.mode) << " --heads " << s.heads;
  return flags.str();
}

struct DumpCase {
  PatternSpec spec;
  int layer;
  int64_t T;
};

TEST_F(CliPattern, DumpMaskMatchesTheDefinitionOnEveryLine) {
  const std::vector<DumpCase> cases = {
      {{PatternKind::strided, 8, 1, 1, CombineMode::merged, 2}, 0, 37},       // T not a multiple of l
      {{PatternKind::strided, 8, 1, 1, CombineMode::interleaved, 1}, 1, 30},  // column part only
      {{PatternKind::strided, 6, 1, 1, CombineMode::heads, 3}, 0, 25},
      {{PatternKind::fixed, 16, 4, 2, CombineMode::merged, 2}, 0, 50},
      {{PatternKind::fixed, 16, 4, 2, CombineMode::heads, 2}, 0, 40},         // summary-only head: empty rows
      {{PatternKind::fixed, 8, 2, 3, CombineMode::interleaved, 3}, 1, 5},     // T < l
      {{PatternKind::fixed, 8, 3, 1, CombineMode::interleaved, 2}, 0, 21},
      {{PatternKind::local, 6, 1, 1, CombineMode::merged, 1}, 0, 20},
      {{PatternKind::local, 32, 1, 1, CombineMode::merged, 2}, 0, 9},         // T < l
      {{PatternKind::dense, 1, 1, 1, CombineMode::merged, 2}, 0, 9},
  };
  for (const DumpCase& c : cases) {
    const std::string path = dir_ + "/mask.txt";
    const std::string args = spec_flags(c.spec) + " --layer " + std::to_string(c.layer) + " --ctx " +
                             std::to_string(c.T) + " --dump-mask " + path;
    SCOPED_TRACE(args);
    const RunResult result = run(args);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    std::ifstream in(path);
    std::string line;
    int64_t expected_head = 0, expected_query = 0, lines = 0;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      int64_t h = -1, i = -1, j = 0;
      fields >> h >> i;
      ASSERT_EQ(h, expected_head) << "line " << lines << ": " << line;
      ASSERT_EQ(i, expected_query) << "line " << lines << ": " << line;
      std::vector<int64_t> keys, expected;
      while (fields >> j) keys.push_back(j);
      for (int64_t k = 0; k < c.T; ++k)
        if (brute_allows(c.spec, c.layer, static_cast<int>(h), i, k)) expected.push_back(k);
      ASSERT_EQ(keys, expected) << "line " << lines << ": " << line;
      ++lines;
      if (++expected_query == c.T) expected_query = 0, ++expected_head;
    }
    EXPECT_EQ(lines, c.spec.heads * c.T);
  }
}

TEST_F(CliPattern, JsonStatsEqualTheBlockLayout) {
  struct StatsCase {
    PatternSpec spec;
    int layer;
    int64_t T;
    int block;
  };
  const std::vector<StatsCase> cases = {
      {{PatternKind::fixed, 16, 4, 2, CombineMode::merged, 2}, 0, 200, 16},
      {{PatternKind::strided, 32, 1, 1, CombineMode::heads, 4}, 0, 300, 32},
      {{PatternKind::fixed, 128, 32, 1, CombineMode::interleaved, 2}, 1, 1000, 64},
      {{PatternKind::local, 64, 1, 1, CombineMode::merged, 1}, 0, 517, 128},
  };
  for (const StatsCase& c : cases) {
    const std::string args = spec_flags(c.spec) + " --layer " + std::to_string(c.layer) + " --ctx " +
                             std::to_string(c.T) + " --block " + std::to_string(c.block) + " --json";
    SCOPED_TRACE(args);
    const RunResult result = run(args);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const nlohmann::json stats = nlohmann::json::parse(result.out);
    const BlockLayout layout = build_block_layout(Pattern(c.spec), c.layer, c.T, c.block);
    EXPECT_EQ(stats["T"].get<int64_t>(), c.T);
    EXPECT_EQ(stats["block"].get<int>(), c.block);
    EXPECT_EQ(stats["blocks_per_side"].get<int64_t>(), (c.T + c.block - 1) / c.block);
    EXPECT_EQ(stats["causal_pairs_per_head"].get<int64_t>(), c.T * (c.T + 1) / 2);
    EXPECT_EQ(stats["total_pairs"].get<int64_t>(), layout.total_pairs());
    EXPECT_DOUBLE_EQ(stats["density"].get<double>(),
                     static_cast<double>(layout.total_pairs()) / (c.spec.heads * c.T * (c.T + 1) / 2.0));
    ASSERT_EQ(stats["per_head"].size(), static_cast<size_t>(c.spec.heads));
    for (int h = 0; h < c.spec.heads; ++h) {
      const nlohmann::json& row = stats["per_head"][h];
      // Pairs counted from the brute-force definition, independently of the layout.
      int64_t brute_pairs = 0;
      for (int64_t i = 0; i < c.T; ++i)
        for (int64_t j = 0; j <= i; ++j) brute_pairs += brute_allows(c.spec, c.layer, h, i, j);
      EXPECT_EQ(row["pairs"].get<int64_t>(), brute_pairs) << "head " << h;
      EXPECT_EQ(row["pairs"].get<int64_t>(), layout.pairs[h]) << "head " << h;
      EXPECT_DOUBLE_EQ(row["keys_per_query"].get<double>(), static_cast<double>(brute_pairs) / c.T);
      EXPECT_EQ(row["blocks"].get<int64_t>(), layout.nnz_head(h));
      EXPECT_EQ(row["full_blocks"].get<int64_t>(), layout.full_blocks_head(h));
      EXPECT_EQ(row["partial_blocks"].get<int64_t>(), layout.nnz_head(h) - layout.full_blocks_head(h));
      EXPECT_DOUBLE_EQ(row["block_fraction"].get<double>(),
                       static_cast<double>(layout.nnz_head(h)) / layout.causal_blocks());
    }
  }
}

TEST_F(CliPattern, StatsAreTheDefaultOutput) {
  const RunResult result = run("--ctx 100 --pattern fixed --stride 16 --summary 4 --heads 2 --block 16");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("last one holds 4 positions"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("keys/query"), std::string::npos) << result.out;
  EXPECT_TRUE(result.err.empty()) << result.err;
}

TEST_F(CliPattern, LongDumpIsRefused) {
  const std::string path = dir_ + "/mask.txt";
  const RunResult result = run("--ctx 9000 --pattern strided --dump-mask " + path);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find("9000"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("--stats"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(CliPattern, EveryBadValueGivesOneLineNamingIt) {
  struct BadCase {
    std::string args, named;
  };
  const std::vector<BadCase> cases = {
      {"--pattern strided --stride 0", "stride 0"},
      {"--pattern local --stride -3", "stride -3"},
      {"--pattern fixed --stride 8 --summary 9", "c = 9"},
      {"--pattern fixed --stride 16 --summary 4 --summary-blocks 5 --heads 8", "v = 5"},
      {"--pattern fixed --stride 16 --summary 4 --summary-blocks 3 --heads 2", "v = 3"},
      {"--pattern sparse", "'sparse'"},
      {"--pattern strided --mode mixed", "'mixed'"},
      {"--ctx 0", "T = 0"},
      {"--ctx -5", "T = -5"},
      {"--ctx abc", "abc"},
      {"--block 48", "block size 48"},
      {"--block 256", "block size 256"},
      {"--heads 0", "heads 0"},
      {"--pattern strided --mode heads --heads 1", "got 1"},
      {"--pattern fixed --mode heads --heads 1", "got 1"},
      {"--layer -1", "layer -1"},
      {"--crop -2 --png " + dir_ + "/p.png", "crop -2"},
      {"--crop 16", "--crop 16"},
      {"--png " + dir_ + "/missing/p.png", dir_ + "/missing/p.png"},
      {"--dump-mask " + dir_ + "/missing/m.txt --ctx 8", dir_ + "/missing/m.txt"},
      {"--unknown-flag 3", "--unknown-flag"},
  };
  for (const BadCase& c : cases) {
    const RunResult result = run(c.args);
    EXPECT_EQ(result.exit_code, 1) << c.args;
    EXPECT_EQ(count_lines(result.err), 1) << c.args << ": " << result.err;
    EXPECT_EQ(result.err.rfind("spt: error: ", 0), 0u) << c.args << ": " << result.err;
    EXPECT_NE(result.err.find(c.named), std::string::npos) << c.args << ": " << result.err;
    EXPECT_TRUE(result.out.empty()) << c.args << ": " << result.out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/p.png"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/missing"));
}

TEST_F(CliPattern, PngHasOnePanelPerHead) {
  const std::string path = dir_ + "/p.png";
  // T = 64: each pair is drawn 8 x 8 pixels (cells are at most 8 wide and panels about
  // 512), so 3 heads give 3 panels of 512 with two 8-pixel gaps.
  RunResult result = run("--ctx 64 --pattern strided --stride 8 --heads 3 --block 16 --png " + path);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("every pair"), std::string::npos) << result.out;
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&image, path.c_str())) << image.message;
  EXPECT_EQ(image.width, 3u * 512 + 2 * 8);
  EXPECT_EQ(image.height, 512u);
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
  ASSERT_TRUE(png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr)) << image.message;
  // The diagonal (j = i) is allowed and drawn in colour; the future (j > i) is light grey.
  const uint8_t* diagonal = &pixels[((4 * 8 + 4) * image.width + 4 * 8 + 4) * 3];
  const uint8_t* future = &pixels[((4 * 8 + 4) * image.width + 40 * 8 + 4) * 3];
  EXPECT_LT(diagonal[0], 235);
  EXPECT_EQ(future[0], 235);
  EXPECT_EQ(future[2], 235);

  result = run("--ctx 4096 --pattern fixed --stride 128 --summary 32 --heads 1 --png " + path);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("downscaled 4x"), std::string::npos) << result.out;
  result = run("--ctx 4096 --pattern fixed --stride 128 --summary 32 --heads 1 --crop 300 --png " + path);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("cropped to the first 300 of 4096"), std::string::npos) << result.out;
}

}  // namespace
}  // namespace spt
