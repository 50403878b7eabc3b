#include "cli/model_flags.h"

#include <sstream>

#include "core/error.h"
#include "data/dataset.h"
#include "model/config_json.h"
#include "model/presets.h"

namespace spt::cli {
namespace {

std::vector<int> parse_sizes(const std::string& text) {
  std::vector<int> sizes;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    size_t used = 0;
    try {
      sizes.push_back(std::stoi(part, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    SPT_CHECK(used > 0 && used == part.size(), "--pos-sizes '", text,
              "': expected comma-separated integers below 2^31 such as 32,32,3");
  }
  return sizes;
}

// True when the command has the flag and the user gave it.
bool given(CLI::App* cmd, const char* flag) {
  const CLI::Option* option = cmd->get_option_no_throw(flag);
  return option != nullptr && option->count() > 0;
}

}  // namespace

void add_model_flags(CLI::App* cmd, ModelFlags& f, bool train) {
  cmd->add_option("--preset", f.preset, "start from a named configuration (see `spt info --presets`)");
  cmd->add_option("--config", f.config_file,
                  "JSON file {\"model\": {...}, \"train\": {...}, \"data\": {...}}, e.g. a run's config.json");
  cmd->add_option("--layers", f.model.layers, "L, residual blocks");
  cmd->add_option("--width", f.model.width, "C, model width");
  cmd->add_option("--heads", f.model.heads, "H, attention heads");
  cmd->add_option("--ctx", f.model.ctx, "T, context length");
  cmd->add_option("--ff-ratio", f.model.ff_ratio, "feed-forward width / C (paper: 4, half-size 2)");
  cmd->add_flag("--half-qk", f.model.half_qk, "q/k projections of width C/2");
  cmd->add_option("--pattern", f.model.pattern, "dense | local | strided | fixed");
  cmd->add_option("--stride", f.model.stride, "l, stride of the pattern");
  cmd->add_option("--summary", f.model.summary, "c, summary width (fixed)");
  cmd->add_option("--summary-blocks", f.model.summary_blocks, "v, per-head summary sub-blocks (fixed)");
  cmd->add_option("--mode", f.model.mode, "merged | interleaved | heads");
  cmd->add_option("--dropout", f.model.dropout, "dropout at the end of each residual branch");
  cmd->add_option("--sample-rate", f.model.sample_rate, "audio models: samples per second (default: the data's)");
  cmd->add_option("--pos-sizes", f.pos_sizes, "position table sizes, e.g. 28,28,1 (default: ceil(T/l),l)");
  cmd->add_option("--data", f.data_path, "data: a byte file, an IDX or CIFAR-10 directory, or a prepared set (spt prepare)");
  cmd->add_option("--data-format", f.data_format, "bytes | idx | cifar10 | prepared (default: prepared for a directory holding index.json, else the preset's)");
  if (!train) return;
  cmd->add_option("--batch", f.train.batch, "B, sequences per micro-batch");
  cmd->add_option("--accumulate", f.train.accumulate, "micro-batches per optimizer step");
  cmd->add_option("--steps", f.train.steps, "optimizer steps in total");
  cmd->add_option("--lr", f.train.lr, "peak learning rate");
  cmd->add_option("--warmup", f.train.warmup, "linear warmup steps");
  cmd->add_option("--weight-decay", f.train.weight_decay, "AdamW weight decay on matrices");
  cmd->add_option("--beta1", f.train.beta1, "AdamW first-moment decay");
  cmd->add_option("--beta2", f.train.beta2, "AdamW second-moment decay");
  cmd->add_option("--eps", f.train.eps, "AdamW epsilon");
  cmd->add_option("--clip", f.train.clip, "global gradient-norm clip (0: off)");
  cmd->add_option("--seed", f.train.seed, "seed of initialization, data order and dropout");
  cmd->add_option("--eval-every", f.train.eval_every, "steps between validation passes (0: at the end)");
  cmd->add_option("--eval-windows,--eval-batches", f.train.eval_batches,
                  "validation windows per pass (default 64, the first ones of the valid split; 0: every full window "
                  "of the split)");
  cmd->add_option("--save-every", f.train.save_every, "steps between checkpoints (0: at the end)");
  cmd->add_option("--ema", f.train.ema,
                  "decay of an exponential moving average of the weights, updated after every step (e.g. 0.999; "
                  "0: off); validation, RUN/best, eval and sample use the average (model_ema.safetensors)");
  cmd->add_option("--patience", f.train.patience,
                  "stop after N validation passes without a new best (0: never; may change on --resume)");
  cmd->add_option("--bucket-mib", f.train.bucket_mib,
                  "data-parallel: reduce the final gradients over the ranks while the backward runs, each time at "
                  "least this many MiB wait (default 25; 0: all after the backward)");
  cmd->add_option("--recompute", f.train.recompute, "recompute each layer from its input in backward; CUDA keeps the attention output (true|false)");
}

// The resolution rule, one for every source: defaults, then the preset, then the --config
// file, then the flags given on the command line; each level overwrites the fields it
// gives. A level that gives ctx or stride but not pos_sizes re-derives text position
// tables {ceil(T / l), l} (apply_geometry_rule); pos_sizes given at a level is kept.
void ModelFlags::resolve(CLI::App* cmd, ModelConfig& m, TrainConfig& t, DataConfig& data) const {
  m = ModelConfig{};
  t = TrainConfig{};
  data = DataConfig{"bytes", ""};
  if (!preset.empty()) {
    const Preset& p = find_preset(preset);
    m = p.model;
    t = p.train;
    data.format = p.data_format;
  }
  if (!config_file.empty()) load_config_file(config_file, m, t, data);
  if (given(cmd, "--layers")) m.layers = model.layers;
  if (given(cmd, "--width")) m.width = model.width;
  if (given(cmd, "--heads")) m.heads = model.heads;
  if (given(cmd, "--ff-ratio")) m.ff_ratio = model.ff_ratio;
  if (given(cmd, "--half-qk")) m.half_qk = model.half_qk;
  if (given(cmd, "--pattern")) m.pattern = model.pattern;
  if (given(cmd, "--summary")) m.summary = model.summary;
  if (given(cmd, "--summary-blocks")) m.summary_blocks = model.summary_blocks;
  if (given(cmd, "--mode")) m.mode = model.mode;
  if (given(cmd, "--dropout")) m.dropout = model.dropout;
  if (given(cmd, "--ctx")) m.ctx = model.ctx;
  if (given(cmd, "--stride")) m.stride = model.stride;
  if (given(cmd, "--pos-sizes")) m.pos_sizes = parse_sizes(pos_sizes);
  apply_geometry_rule(m, given(cmd, "--ctx") || given(cmd, "--stride"), given(cmd, "--pos-sizes"));
  if (given(cmd, "--data-format")) data.format = data_format;
  if (given(cmd, "--data")) data.path = data_path;
  // A directory holding index.json is a prepared set unless a format is named.
  if (!given(cmd, "--data-format") && !data.path.empty() && is_prepared_directory(data.path)) data.format = "prepared";
  if (given(cmd, "--sample-rate")) m.sample_rate = model.sample_rate;
  if (cmd->get_option_no_throw("--accumulate") != nullptr) resolve_train(cmd, t);
}

void ModelFlags::resolve(CLI::App* cmd, ModelConfig& m, TrainConfig& t, std::string& format) const {
  DataConfig data;
  resolve(cmd, m, t, data);
  format = data.format;
}

void ModelFlags::resolve_train(CLI::App* cmd, TrainConfig& t) const {
  if (given(cmd, "--batch")) t.batch = train.batch;
  if (given(cmd, "--accumulate")) t.accumulate = train.accumulate;
  if (given(cmd, "--steps")) t.steps = train.steps;
  if (given(cmd, "--lr")) t.lr = train.lr;
  if (given(cmd, "--warmup")) t.warmup = train.warmup;
  if (given(cmd, "--weight-decay")) t.weight_decay = train.weight_decay;
  if (given(cmd, "--beta1")) t.beta1 = train.beta1;
  if (given(cmd, "--beta2")) t.beta2 = train.beta2;
  if (given(cmd, "--eps")) t.eps = train.eps;
  if (given(cmd, "--clip")) t.clip = train.clip;
  if (given(cmd, "--seed")) t.seed = train.seed;
  if (given(cmd, "--eval-every")) t.eval_every = train.eval_every;
  if (given(cmd, "--eval-batches")) t.eval_batches = train.eval_batches;
  if (given(cmd, "--save-every")) t.save_every = train.save_every;
  if (given(cmd, "--recompute")) t.recompute = train.recompute;
  if (given(cmd, "--ema")) t.ema = train.ema;
  if (given(cmd, "--patience")) t.patience = train.patience;
  if (given(cmd, "--bucket-mib")) t.bucket_mib = train.bucket_mib;
}

}  // namespace spt::cli
