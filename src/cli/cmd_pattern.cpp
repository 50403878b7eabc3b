// `spt pattern`: look at an attention pattern as a picture, as statistics of its
// block layout, or as the exact list of keys every query attends to.

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "io/file_util.h"
#include "io/png.h"
#include "model/config.h"
#include "pattern/block_layout.h"
#include "pattern/pattern.h"
#include "pattern/render.h"

namespace spt::cli {
namespace {

// One line per (head, query) stays readable up to here: 8192 positions and 8 heads
// of a dense pattern already take about 1.5 GB of text.
constexpr int64_t kMaxDumpContext = 8192;
constexpr int64_t kMaxContext = int64_t{1} << 30;
// The block layout counts the keys of every query row in every causal key block,
// heads x T x (T / BS) / 2 counts; 2^29 of them (4 heads at T = 2^17, block 64) take
// 3.8 s on 2 cores, so this bound keeps the statistics to seconds. (The picture bounds
// its own work: render_pattern.)
constexpr int64_t kMaxLayoutWork = int64_t{1} << 29;

struct PatternArgs {
  int64_t ctx = ModelConfig{}.ctx;
  std::string pattern = ModelConfig{}.pattern;
  int stride = ModelConfig{}.stride;
  int summary = ModelConfig{}.summary;
  int summary_blocks = ModelConfig{}.summary_blocks;
  int heads = ModelConfig{}.heads;
  std::string mode = ModelConfig{}.mode;
  int layer = 0;
  int block = 64;
  int64_t crop = 0;
  std::string png_path;
  std::string dump_path;
  bool stats = false;
  bool json = false;
  bool block_given = false;  // the picture draws a grid only when --block is given
};

PatternSpec to_spec(const PatternArgs& args) {
  PatternSpec spec;
  spec.kind = parse_pattern_kind(args.pattern);
  spec.mode = parse_combine_mode(args.mode);
  spec.stride = args.stride;
  spec.summary = args.summary;
  spec.summary_blocks = args.summary_blocks;
  spec.heads = args.heads;
  return spec;
}

nlohmann::json stats_json(const Pattern& pattern, const BlockLayout& layout, int layer) {
  const PatternSpec& spec = pattern.spec();
  nlohmann::json out;
  out["pattern"] = to_string(spec.kind);
  out["description"] = pattern.describe();
  out["stride"] = spec.stride;
  out["summary"] = spec.summary;
  out["summary_blocks"] = spec.summary_blocks;
  out["mode"] = to_string(spec.mode);
  out["heads"] = spec.heads;
  out["layer"] = layer;
  out["T"] = layout.T;
  out["block"] = layout.block;
  out["blocks_per_side"] = layout.blocks;
  out["causal_pairs_per_head"] = layout.causal_pairs();
  out["causal_blocks_per_head"] = layout.causal_blocks();
  out["total_pairs"] = layout.total_pairs();
  out["density"] = static_cast<double>(layout.total_pairs()) / (static_cast<double>(layout.causal_pairs()) * layout.heads);
  nlohmann::json per_head = nlohmann::json::array();
  for (int h = 0; h < layout.heads; ++h) {
    const int64_t listed = layout.nnz_head(h), full = layout.full_blocks_head(h);
    per_head.push_back({{"head", h},
                        {"pairs", layout.pairs[h]},
                        {"keys_per_query", static_cast<double>(layout.pairs[h]) / layout.T},
                        {"density", static_cast<double>(layout.pairs[h]) / layout.causal_pairs()},
                        {"blocks", listed},
                        {"full_blocks", full},
                        {"partial_blocks", listed - full},
                        {"block_fraction", static_cast<double>(listed) / layout.causal_blocks()}});
  }
  out["per_head"] = per_head;
  return out;
}

void print_stats_table(const nlohmann::json& stats) {
  const int64_t T = stats["T"], block = stats["block"], blocks = stats["blocks_per_side"];
  const int64_t last = T - (blocks - 1) * block;
  std::printf("pattern   %s, layer %d\n", stats["description"].get<std::string>().c_str(), stats["layer"].get<int>());
  std::printf("context   T = %lld, block %lld: %lld blocks per side", static_cast<long long>(T),
              static_cast<long long>(block), static_cast<long long>(blocks));
  if (last != block) std::printf(", the last one holds %lld positions", static_cast<long long>(last));
  std::printf("\n");
  std::printf("attended  %lld pairs of %lld causal pairs over all heads (density %.4f)\n\n",
              static_cast<long long>(stats["total_pairs"].get<int64_t>()),
              static_cast<long long>(stats["causal_pairs_per_head"].get<int64_t>() * stats["heads"].get<int64_t>()),
              stats["density"].get<double>());
  std::printf("%4s %14s %11s %8s %8s %8s %8s %15s\n", "head", "pairs", "keys/query", "density", "blocks", "full",
              "partial", "blocks/causal");
  for (const nlohmann::json& row : stats["per_head"])
    std::printf("%4d %14lld %11.2f %8.4f %8lld %8lld %8lld %15.4f\n", row["head"].get<int>(),
                static_cast<long long>(row["pairs"].get<int64_t>()), row["keys_per_query"].get<double>(),
                row["density"].get<double>(), static_cast<long long>(row["blocks"].get<int64_t>()),
                static_cast<long long>(row["full_blocks"].get<int64_t>()),
                static_cast<long long>(row["partial_blocks"].get<int64_t>()), row["block_fraction"].get<double>());
  std::printf("(blocks: (query block, key block) tiles listed for the head; blocks/causal: their fraction of the\n"
              " %lld causal tiles; full tiles need no element mask, partial ones do)\n",
              static_cast<long long>(stats["causal_blocks_per_head"].get<int64_t>()));
}

// Writes "h i j1 j2 ..." per (head, query) through write_file_atomically (a temporary
// sibling, renamed over `path` once complete).
int64_t dump_mask(const Pattern& pattern, int layer, int64_t T, const std::string& path) {
  std::vector<int32_t> keys;
  std::string line;
  int64_t lines = 0;
  write_file_atomically(path, [&](OutputFile& out) {
    for (int h = 0; h < pattern.heads(); ++h) {
      const HeadMask mask = pattern.head_mask(layer, h);
      for (int64_t i = 0; i < T; ++i) {
        mask.row_keys(i, keys);
        line = std::to_string(h) + ' ' + std::to_string(i);
        for (int32_t j : keys) line += ' ' + std::to_string(j);
        line += '\n';
        out.write(line.data(), static_cast<int64_t>(line.size()));
        ++lines;
      }
    }
  });
  return lines;
}

// Refuses statistics that would run for minutes, naming the limit and what brings it down.
void check_layout_work(const PatternArgs& args, bool want_stats) {
  const double blocks = std::ceil(static_cast<double>(args.ctx) / args.block);
  const double layout_work = static_cast<double>(args.heads) * static_cast<double>(args.ctx) * blocks / 2;
  SPT_CHECK(!want_stats || layout_work <= double(kMaxLayoutWork), "the statistics at T = ", args.ctx, " with ", args.heads,
            " heads and block ", args.block, " count keys in ", layout_work, " (query, key block) rows, more than the ",
            kMaxLayoutWork, " they may take (they would run for minutes): lower --ctx or --heads, or raise --block");
}

void run(const PatternArgs& args) {
  SPT_CHECK(args.ctx >= 1 && args.ctx <= kMaxContext, "context length T = ", args.ctx, " must be in [1, 2^30] (--ctx)");
  SPT_CHECK(valid_block_size(args.block), "block size ", args.block, " is not supported: use 16, 32, 64 or 128 (--block)");
  SPT_CHECK(args.heads >= 1, "heads ", args.heads, " must be at least 1 (--heads)");
  SPT_CHECK(args.layer >= 0, "layer ", args.layer, " must be non-negative (--layer)");
  SPT_CHECK(args.crop >= 0 && args.crop <= args.ctx, "crop ", args.crop, " must be in [0, T = ", args.ctx,
            "] (--crop; 0 shows every position)");
  const Pattern pattern(to_spec(args));
  const bool want_dump = !args.dump_path.empty(), want_png = !args.png_path.empty();
  const bool want_stats = args.stats || args.json || (!want_dump && !want_png);
  SPT_CHECK(args.crop == 0 || want_png, "--crop ", args.crop, " applies to the picture: add --png FILE");
  SPT_CHECK(!want_dump || args.ctx <= kMaxDumpContext, "--dump-mask writes one line per (head, query) and stops at T = ",
            kMaxDumpContext, ", got T = ", args.ctx, ": use --stats or --png for longer contexts");

  check_layout_work(args, want_stats);
  nlohmann::json report;
  if (want_png) {
    RenderOptions options;
    options.T = args.ctx;
    options.layer = args.layer;
    options.block = args.block_given ? args.block : 0;
    options.crop = args.crop;
    const PatternPicture picture = render_pattern(pattern, options);
    write_png_rgb(args.png_path, picture.rgb.data(), picture.width, picture.height);
    const std::string shown = picture.note.empty() ? "every pair of every head, at full size" : picture.note;
    report["png"] = {{"path", args.png_path}, {"width", picture.width}, {"height", picture.height}, {"note", shown}};
    if (!args.json)
      std::printf("wrote %s: %dx%d pixels, %d head panels; %s\n", args.png_path.c_str(), picture.width, picture.height,
                  pattern.heads(), shown.c_str());
  }
  if (want_dump) {
    const int64_t lines = dump_mask(pattern, args.layer, args.ctx, args.dump_path);
    report["dump_mask"] = {{"path", args.dump_path}, {"lines", lines}};
    if (!args.json) std::printf("wrote %s: %lld lines \"h i j1 j2 ...\"\n", args.dump_path.c_str(), static_cast<long long>(lines));
  }
  if (want_stats) {
    const BlockLayout layout = build_block_layout(pattern, args.layer, args.ctx, args.block);
    const nlohmann::json stats = stats_json(pattern, layout, args.layer);
    if (args.json) report.update(stats);
    else print_stats_table(stats);
  }
  if (args.json) std::printf("%s\n", report.dump(2).c_str());
}

}  // namespace

void add_pattern_command(CLI::App& app) {
  auto args = std::make_shared<PatternArgs>();
  CLI::App* cmd = app.add_subcommand(
      "pattern", "Show an attention pattern: a PNG picture, block-layout statistics or the exact mask");
  cmd->add_option("--ctx", args->ctx, "T, context length")->capture_default_str();
  cmd->add_option("--pattern", args->pattern, "dense | local | strided | fixed")->capture_default_str();
  cmd->add_option("--stride", args->stride, "l, stride of the pattern")->capture_default_str();
  cmd->add_option("--summary", args->summary, "c, summary width (fixed)")->capture_default_str();
  cmd->add_option("--summary-blocks", args->summary_blocks, "v, head h uses summary sub-block h mod v (fixed)")
      ->capture_default_str();
  cmd->add_option("--heads", args->heads, "H, attention heads")->capture_default_str();
  cmd->add_option("--mode", args->mode, "merged | interleaved | heads: how A(1) and A(2) combine")->capture_default_str();
  cmd->add_option("--layer", args->layer, "r, the layer (interleaved mode alternates by layer)")->capture_default_str();
  cmd->add_option("--block", args->block,
                  "BS, block size 16 | 32 | 64 | 128 of the statistics (default 64) and of the picture's grid "
                  "(drawn only when given); the last block may be short, T need not be a multiple");
  cmd->add_option("--png", args->png_path, "write a picture: queries as rows, keys as columns, one panel per head");
  cmd->add_option("--crop", args->crop, "with --png: show only the first N positions, one cell per pair");
  cmd->add_flag("--stats", args->stats, "print attended pairs, density and block counts (the default output)");
  cmd->add_flag("--json", args->json, "print the statistics (and what was written) as one JSON object");
  cmd->add_option("--dump-mask", args->dump_path, "write \"h i j1 j2 ...\" per (head, query), keys ascending (T <= 8192)");
  cmd->callback([args, cmd] {
    args->block_given = cmd->count("--block") > 0;
    run(*args);
  });
}

}  // namespace spt::cli
