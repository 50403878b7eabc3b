// Model and training configuration. Dimension letters used across spt:
//   B batch, T sequence length (context), C width, H heads, D head dim (C/H),
//   Dk query/key head dim (D, or D/2 with half-width q/k), L layers,
//   V vocabulary (256), F feed-forward width, l stride, c summary width,
//   BS block size of a block layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/vocab.h"
#include "pattern/pattern.h"

namespace spt {

struct ModelConfig {
  int layers = 4;             // L
  int width = 256;            // C
  int heads = 4;              // H (C % H == 0)
  int ctx = 1024;             // T
  double ff_ratio = 4.0;      // F = ff_ratio * C (paper: 4, "half-size" 2)
  bool half_qk = false;       // q/k projections of width C/2 (Dk = D/2)
  std::string pattern = "strided";  // dense | local | strided | fixed
  int stride = 32;            // l
  int summary = 8;            // c (fixed)
  int summary_blocks = 1;     // v: head h uses summary sub-block h mod v (fixed)
  std::string mode = "merged";  // merged | interleaved | heads
  double dropout = 0.0;       // at the end of each residual branch
  // Factorized learned position embeddings: position t has coordinate k equal to
  // (t / prod(pos_sizes[k+1..])) % pos_sizes[k]; one table of pos_sizes[k] rows each.
  // Text/audio: {ceil(T / l), l}; images: {rows, cols, channels}.
  std::vector<int> pos_sizes = {32, 32};
  // Audio models: samples per second of the mu-law tokens (from the prepared data set
  // they were trained on), so that samples play at the right speed; 0: not audio.
  int sample_rate = 0;

  int head_dim() const { return width / heads; }                           // D
  int qk_dim() const { return half_qk ? head_dim() / 2 : head_dim(); }     // Dk
  int ff_width() const { return static_cast<int>(ff_ratio * width + 0.5); }  // F
  int qkv_width() const { return 2 * qk_dim() * heads + width; }           // 2*H*Dk + C
};

struct TrainConfig {
  int batch = 4;              // B, sequences per micro-batch
  int accumulate = 1;         // micro-batches per optimizer step
  int64_t steps = 1000;       // optimizer steps in total
  double lr = 1e-3;           // peak learning rate
  int64_t warmup = 100;       // linear warmup steps, then cosine decay to 0 at `steps`
  double weight_decay = 0.01;  // AdamW, on matrices only (see train/optimizer.h)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double clip = 1.0;          // global gradient-norm clip (0 disables)
  uint64_t seed = 1;
  int64_t eval_every = 200;   // steps between validation passes (0: only at the end)
  int64_t eval_batches = 64;  // validation windows per pass during training (0: the whole split); a bound
                              // keeps a pass to seconds (the whole split of a large set takes minutes)
  int64_t save_every = 200;   // steps between checkpoints (0: only at the end)
  // Decay of an exponential moving average of the weights, updated after every optimizer
  // step (0: none); the average is what validation scores and eval/sample use.
  double ema = 0.0;
  int64_t patience = 0;       // stop after this many validation passes without a new best (0: never)
  bool recompute = true;      // keep only the residual stream per layer (CUDA: and the attention output)
  // Data parallelism: the final gradients are reduced over the ranks while the backward
  // runs, each time at least this many MiB of them wait (25, as PyTorch DDP's buckets);
  // 0: all in one reduce-scatter after the backward.
  double bucket_mib = 25.0;
};

// Position tables of a text (or audio) layout: {ceil(T / l), l}.
std::vector<int> text_pos_sizes(int ctx, int stride);

// The one rule by which a config is resolved from its sources, applied level by level
// (preset, then the --config file, then the command-line flags; each level overwrites
// the fields it gives): a level that gives ctx or stride but not pos_sizes re-derives
// text position tables {ceil(T / l), l} from the resolved T and l; pos_sizes given at a
// level is kept as given. Image tables (three sizes) are never re-derived.
void apply_geometry_rule(ModelConfig& config, bool geometry_given, bool pos_sizes_given);

// Validate a config; throw spt::Error naming the bad value and the fix.
void validate(const ModelConfig& config);
void validate(const TrainConfig& config);

// "layers 2, width 32, ff_ratio 4, pos_sizes [8, 8]": the fields that set a model's size,
// for messages refusing one too large.
std::string size_fields(const ModelConfig& config);

// The attention pattern a model config describes (validated by Pattern's constructor).
PatternSpec pattern_spec(const ModelConfig& config);

}  // namespace spt
