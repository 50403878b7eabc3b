#include "model/config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/input_file.h"
#include "model/model_size.h"
#include "pattern/pattern.h"

namespace spt {
namespace {

// Widths are ints: feed-forward and q/k/v widths (up to 3C) must stay below 2^31.
constexpr int64_t kMaxWidth = 2147483647;

}  // namespace

std::vector<int> text_pos_sizes(int ctx, int stride) {
  const int l = std::max(1, stride);
  return {static_cast<int>((int64_t{ctx} + l - 1) / l), l};
}

void apply_geometry_rule(ModelConfig& config, bool geometry_given, bool pos_sizes_given) {
  if (geometry_given && !pos_sizes_given && config.pos_sizes.size() == 2)
    config.pos_sizes = text_pos_sizes(config.ctx, config.stride);
}

void validate(const ModelConfig& c) {
  SPT_CHECK(c.layers >= 1, "layers ", c.layers, " must be at least 1 (--layers)");
  SPT_CHECK(c.width >= 1, "width ", c.width, " must be at least 1 (--width)");
  SPT_CHECK(c.heads >= 1 && c.width % c.heads == 0, "width ", c.width, " must be a multiple of heads ", c.heads,
            " (--width, --heads)");
  SPT_CHECK(!c.half_qk || c.head_dim() % 2 == 0, "half-width q/k needs an even head dim, got width/heads = ",
            c.head_dim());
  SPT_CHECK(c.ctx >= 1, "context ", c.ctx, " must be at least 1 (--ctx)");
  // Feed-forward and q/k/v widths are ints; their products with the width must stay int64.
  SPT_CHECK(std::isfinite(c.ff_ratio) && c.ff_ratio > 0 && c.ff_ratio * c.width + 0.5 >= 1 &&
                c.ff_ratio * c.width < kMaxWidth,
            "ff_ratio ", c.ff_ratio, " times width ", c.width, " must give a feed-forward width in [1, ", kMaxWidth,
            ") (--ff-ratio, --width)");
  SPT_CHECK(c.width < kMaxWidth / 3, "width ", c.width, " must be below ", kMaxWidth / 3, " (--width)");
  SPT_CHECK(std::isfinite(c.dropout) && c.dropout >= 0 && c.dropout < 1, "dropout ", c.dropout,
            " must be in [0, 1) (--dropout)");
  SPT_CHECK(c.sample_rate >= 0 && c.sample_rate <= 1000000, "sample_rate ", c.sample_rate,
            " must be in 0..1000000 (0: not an audio model) (--sample-rate)");
  SPT_CHECK(!c.pos_sizes.empty(), "pos_sizes must list at least one position table size");
  int64_t product = 1;
  for (int size : c.pos_sizes) {
    SPT_CHECK(size >= 1, "position table size ", size, " must be at least 1 (pos_sizes)");
    // A table has a row per value of its coordinate, which takes at most ctx values.
    SPT_CHECK(size <= c.ctx, "position table size ", size, " exceeds context ", c.ctx,
              ": rows beyond ctx are never used (pos_sizes)");
    product = std::min<int64_t>(product * size, int64_t{1} << 40);  // saturates above any ctx
  }
  SPT_CHECK(product >= c.ctx, "position tables of sizes whose product is ", product, " cannot index context ", c.ctx,
            ": pos_sizes must multiply to at least ctx");
  // Fields that only the fixed pattern uses must still be sane: a file that holds a
  // negative or absurd one is damaged, whatever the pattern.
  SPT_CHECK(c.stride >= 1 && c.stride <= c.ctx, "stride ", c.stride, " must be in [1, ctx ", c.ctx, "] (--stride)");
  SPT_CHECK(c.summary >= 1, "summary ", c.summary, " must be at least 1 (--summary)");
  SPT_CHECK(c.summary_blocks >= 1 && c.summary_blocks <= c.heads, "summary_blocks ", c.summary_blocks,
            " must be in [1, heads ", c.heads, "] (--summary-blocks)");
  const Pattern check(pattern_spec(c));
  // The CPU model always holds fp32 weights and gradients; refuse what cannot exist here
  // before anything is allocated, naming the fields that make the model this large.
  const double params = parameter_count(c), bytes = 8 * params;
  const double limit = static_cast<double>(memory_limit_bytes());
  SPT_CHECK(bytes <= limit, "a model of ", params, " parameters (", size_fields(c), ") needs ", format_bytes(bytes),
            " for its fp32 weights and gradients alone, more than the ", format_bytes(limit),
            " of memory spt may use here: lower layers, width, ff_ratio or pos_sizes (--layers, --width, --ff-ratio, "
            "--ctx)");
}

std::string size_fields(const ModelConfig& c) {
  std::string sizes;
  for (int size : c.pos_sizes) sizes += (sizes.empty() ? "" : ", ") + std::to_string(size);
  return message("layers ", c.layers, ", width ", c.width, ", ff_ratio ", c.ff_ratio, ", pos_sizes [", sizes, "]");
}

PatternSpec pattern_spec(const ModelConfig& c) {
  PatternSpec spec;
  spec.kind = parse_pattern_kind(c.pattern);
  spec.stride = c.stride;
  spec.summary = c.summary;
  spec.summary_blocks = c.summary_blocks;
  spec.mode = parse_combine_mode(c.mode);
  spec.heads = c.heads;
  return spec;
}

void validate(const TrainConfig& t) {
  SPT_CHECK(t.batch >= 1, "batch ", t.batch, " must be at least 1 (--batch)");
  SPT_CHECK(t.accumulate >= 1, "accumulate ", t.accumulate, " must be at least 1 (--accumulate)");
  SPT_CHECK(t.steps >= 1, "steps ", t.steps, " must be at least 1 (--steps)");
  SPT_CHECK(t.lr > 0 && t.lr < 1, "learning rate ", t.lr, " must be in (0, 1) (--lr)");
  SPT_CHECK(t.warmup >= 0, "warmup ", t.warmup, " must be non-negative (--warmup)");
  // AdamW shrinks weights by lr * weight_decay per step: at 1 or more it would zero or
  // flip them.
  SPT_CHECK(std::isfinite(t.weight_decay) && t.weight_decay >= 0 && t.weight_decay * t.lr < 1, "weight decay ",
            t.weight_decay, " must be finite, non-negative and below 1 / lr = ", 1 / t.lr, " (--weight-decay)");
  SPT_CHECK(t.beta1 >= 0 && t.beta1 < 1, "Adam beta1 ", t.beta1, " must be in [0, 1) (--beta1)");
  SPT_CHECK(t.beta2 >= 0 && t.beta2 < 1, "Adam beta2 ", t.beta2, " must be in [0, 1) (--beta2)");
  SPT_CHECK(std::isfinite(t.eps) && t.eps > 0 && t.eps < 1, "Adam eps ", t.eps, " must be in (0, 1) (--eps)");
  SPT_CHECK(std::isfinite(t.clip) && t.clip >= 0, "gradient clip ", t.clip,
            " must be finite and non-negative (--clip; 0 disables)");
  SPT_CHECK(t.eval_every >= 0 && t.save_every >= 0 && t.eval_batches >= 0,
            "--eval-every, --save-every and --eval-windows must be non-negative");
  SPT_CHECK(std::isfinite(t.ema) && t.ema >= 0 && t.ema < 1, "weight average decay ", t.ema,
            " must be in [0, 1) (--ema; 0 turns the average off, 0.999 is typical)");
  SPT_CHECK(t.patience >= 0, "patience ", t.patience, " must be non-negative (--patience; 0: never stop early)");
  SPT_CHECK(std::isfinite(t.bucket_mib) && t.bucket_mib >= 0, "gradient bucket size ", t.bucket_mib,
            " MiB must be a non-negative number (--bucket-mib; 0 reduces the gradients after the backward)");
}

}  // namespace spt
