// `spt train`: train a model on a data set, with checkpoints, resume and validation.
#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "train/trainer.h"

namespace spt::cli {

void add_train_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("train", "Train a Sparse Transformer (Ctrl-C saves a checkpoint and stops)");
  auto flags = std::make_shared<ModelFlags>();
  auto run = std::make_shared<TrainRun>();
  add_model_flags(cmd, *flags, true);
  cmd->add_option("--out", run->out_dir, "run directory: config.json, metrics.jsonl, loss.png, checkpoint/")->required();
  cmd->add_flag("--resume", run->resume, "continue the run in --out from its checkpoint (configs come from it)");
  cmd->add_option("--eval-batch", run->eval_batch, "windows per validation forward pass");
  cmd->add_option("--log-every", run->log_every, "steps between progress lines when not on a terminal");
  cmd->add_option("--device", run->device, "cpu | cuda (one GPU)");
  cmd->add_option("--precision", run->precision, "fp32 | bf16 | fp16 (default: fp32 on the CPU, bf16 on the GPU)");
  cmd->add_flag("--deterministic", run->deterministic,
                "cuda: make every step repeat bit for bit (attention backward without atomic additions; slower)");
  cmd->add_option("--stop-at", run->stop_at, "save and stop once this many steps are done (resume later)");
  cmd->footer("Example: spt train --preset kjv-small --data data/kjv.txt --out runs/kjv");
  cmd->callback([cmd, flags, run] {
    TrainRun r = *run;
    std::string format;
    flags->resolve(cmd, r.model, r.train, format);
    r.data_path = flags->data_path;
    if (r.resume) {
      for (const char* fixed : {"--preset", "--config", "--layers", "--width", "--heads", "--ctx", "--ff-ratio",
                                "--half-qk", "--pattern", "--stride", "--summary", "--summary-blocks", "--mode",
                                "--dropout", "--pos-sizes", "--sample-rate", "--batch", "--accumulate", "--lr", "--warmup", "--seed"})
        SPT_CHECK(cmd->count(fixed) == 0, "--resume takes the model and training config from the checkpoint: drop ",
                  fixed, " (only --steps, --data and the logging flags may change)");
      r.model = ModelConfig{};
      r.data_format = cmd->count("--data-format") ? format : std::string();
      r.train.steps = cmd->count("--steps") ? r.train.steps : 0;
    } else {
      r.data_format = format;
    }
    const int code = run_training(r);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace spt::cli
