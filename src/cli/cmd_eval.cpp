// `spt eval`: bits per byte (or per dim) of a checkpoint over a whole split, with a
// progress line on a terminal; Ctrl-C stops it within a batch (exit 130, no result).
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "data/dataset.h"
#include "train/checkpoint.h"
#include "train/evaluator.h"
#include "train/stop_signal.h"

namespace spt::cli {
namespace {

struct EvalFlags {
  std::string checkpoint;
  std::string split = "test";
  std::string data_path, data_format;
  int batch = 8;
  std::string device = "cpu", precision;
  int64_t max_windows = 0;
  bool json = false;
  bool raw_weights = false;
};

void run(const EvalFlags& f) {
  const CheckpointInfo info = read_checkpoint_info(f.checkpoint);
  const std::string path = f.data_path.empty() ? info.state.data_path : f.data_path;
  std::string format = f.data_format.empty() ? info.state.data_format : f.data_format;
  if (format.empty()) format = "bytes";
  SPT_CHECK(!path.empty(), "'", f.checkpoint, "' holds weights only (no state.json names the data set): give --data ",
            "FILE (and --data-format unless it is bytes)");
  const Dataset data = load_dataset(format, path);
  check_model_fits(data, info.model);
  Model model(info.model);
  const LoadedWeights weights = load_weights(f.checkpoint, model, !f.raw_weights);
  const char* which = weights.average ? "weight average" : "trained weights";
  const std::unique_ptr<Engine> engine = make_engine({f.device, f.precision, false}, model, nullptr);
  const StopSignals signals;
  const EvalResult r = evaluate_with_progress("eval " + f.split, *engine, info.model.ctx, data.split(f.split),
                                              f.batch, f.max_windows, [&] { return signals.requested(); });
  if (r.interrupted) {
    std::fprintf(stderr, "spt eval: interrupted after %lld of %lld windows; no result\n",
                 static_cast<long long>(r.windows), static_cast<long long>(r.split_windows));
    throw CLI::RuntimeError(kInterruptedExitCode);
  }
  const char* unit = data.images() ? "dim" : "byte";
  if (f.json) {
    const nlohmann::json out = {{"bits_per_dim", r.bits_per_dim}, {"nats", r.nats}, {"tokens", r.tokens},
                                {"windows", r.windows}, {"split", f.split}, {"data", data.path},
                                {"checkpoint", f.checkpoint}, {"step", info.state.step}, {"seconds", r.seconds},
                                {"skipped_tokens", r.skipped_tokens}, {"weights", weights.average ? "ema" : "raw"},
                                {"weights_file", weights.file}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s: %.4f bits per %s over %lld tokens (%lld windows, step %lld, %s, %.1f s)\n", f.split.c_str(),
                r.bits_per_dim, unit, static_cast<long long>(r.tokens), static_cast<long long>(r.windows),
                static_cast<long long>(info.state.step), which, r.seconds);
    if (r.skipped_tokens > 0)
      std::printf("(%lld tokens of clips shorter than the context %d were not scored)\n",
                  static_cast<long long>(r.skipped_tokens), info.model.ctx);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("eval", "Bits per byte/dim of a checkpoint over a whole split");
  auto f = std::make_shared<EvalFlags>();
  cmd->add_option("--checkpoint", f->checkpoint,
                  "checkpoint directory (RUN/checkpoint, RUN/best), run directory (its latest checkpoint), or a .safetensors "
                  "file alone (model.safetensors, model_ema.safetensors)")->required();
  cmd->add_flag("--raw-weights", f->raw_weights,
                "score the trained weights even when the checkpoint holds a weight average (--ema; used by default)");
  cmd->add_option("--split", f->split, "train | valid | test");
  cmd->add_option("--data", f->data_path, "data set (default: the one the checkpoint was trained on)");
  cmd->add_option("--data-format", f->data_format, "bytes | idx | cifar10 | prepared (default: the checkpoint's)");
  cmd->add_option("--batch", f->batch, "windows per forward pass");
  cmd->add_option("--max-windows", f->max_windows, "evaluate only the first N windows (0: the whole split)");
  cmd->add_option("--device", f->device, "cpu | cuda");
  cmd->add_option("--precision", f->precision, "fp32 | bf16 | fp16 (default: fp32 on the CPU, bf16 on the GPU)");
  cmd->add_flag("--json", f->json, "print one JSON object (bits_per_dim, tokens, ...) on stdout");
  cmd->callback([f] { run(*f); });
}

}  // namespace spt::cli
