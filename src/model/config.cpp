#include "model/config.h"

#include "core/error.h"
#include "pattern/pattern.h"

namespace spt {

void validate(const ModelConfig& c) {
  SPT_CHECK(c.layers >= 1, "layers ", c.layers, " must be at least 1 (--layers)");
  SPT_CHECK(c.width >= 1, "width ", c.width, " must be at least 1 (--width)");
  SPT_CHECK(c.heads >= 1 && c.width % c.heads == 0, "width ", c.width, " must be a multiple of heads ", c.heads,
            " (--width, --heads)");
  SPT_CHECK(!c.half_qk || c.head_dim() % 2 == 0, "half-width q/k needs an even head dim, got width/heads = ",
            c.head_dim());
  SPT_CHECK(c.ctx >= 1, "context ", c.ctx, " must be at least 1 (--ctx)");
  SPT_CHECK(c.ff_ratio > 0 && c.ff_width() >= 1, "ff_ratio ", c.ff_ratio, " must give a positive width (--ff-ratio)");
  SPT_CHECK(c.dropout >= 0 && c.dropout < 1, "dropout ", c.dropout, " must be in [0, 1) (--dropout)");
  SPT_CHECK(c.sample_rate >= 0 && c.sample_rate <= 1000000, "sample_rate ", c.sample_rate,
            " must be in 0..1000000 (0: not an audio model) (--sample-rate)");
  SPT_CHECK(!c.pos_sizes.empty(), "pos_sizes must list at least one position table size");
  int64_t product = 1;
  for (int size : c.pos_sizes) {
    SPT_CHECK(size >= 1, "position table size ", size, " must be at least 1 (pos_sizes)");
    product *= size;
  }
  SPT_CHECK(product >= c.ctx, "position tables of sizes whose product is ", product, " cannot index context ", c.ctx,
            ": pos_sizes must multiply to at least ctx");
  const Pattern check(pattern_spec(c));
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
  SPT_CHECK(t.weight_decay >= 0, "weight decay ", t.weight_decay, " must be non-negative (--weight-decay)");
  SPT_CHECK(t.beta1 >= 0 && t.beta1 < 1 && t.beta2 >= 0 && t.beta2 < 1, "Adam betas ", t.beta1, ", ", t.beta2,
            " must be in [0, 1)");
  SPT_CHECK(t.eps > 0, "Adam eps ", t.eps, " must be positive");
  SPT_CHECK(t.clip >= 0, "gradient clip ", t.clip, " must be non-negative (--clip; 0 disables)");
  SPT_CHECK(t.eval_every >= 0 && t.save_every >= 0 && t.eval_batches >= 0,
            "--eval-every, --save-every and --eval-batches must be non-negative");
}

}  // namespace spt
