// `spt train`: train a model on a data set, with checkpoints, resume and validation.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "dist/world.h"
#include "io/input_file.h"
#include "model/config_json.h"
#include "model/model_size.h"
#include "train/trainer.h"
#ifdef SPT_HAVE_CUDA
#include "model/cuda/cuda_model.h"
#include "model/model.h"
#endif

namespace spt::cli {
namespace {

#ifdef SPT_HAVE_CUDA
constexpr bool kHaveCuda = true;
#else
constexpr bool kHaveCuda = false;
#endif

// The device plan of the CUDA model, computed by the CUDA model itself (weights are
// placed on the GPU, nothing is trained).
std::string gpu_plan(const TrainRun& r) {
#ifdef SPT_HAVE_CUDA
  Model host(r.model);
  host.recompute = r.train.recompute;
  cuda::CudaModel gpu(host, cuda::parse_dtype(r.precision.empty() ? "bf16" : r.precision), true);
  gpu.recompute = r.train.recompute;
  return gpu.memory_plan(r.train.batch, true).describe();
#else
  (void)r;
  throw Error("this spt was built without CUDA: it has no GPU memory plan (use --device cpu)");
#endif
}

// Refuses a run whose host memory cannot exist here, before the data is read or anything
// is allocated. On the GPU the activations live in device memory, which the CUDA model
// plans (and refuses) itself.
HostMemoryPlan checked_host_plan(const TrainRun& r) {
  validate(r.model);
  validate(r.train);
  const bool cpu = r.device == "cpu";
  // Validation reuses the training buffers at the evaluation batch size, so the larger counts.
  const int widest = std::max(r.train.batch, r.eval_batch);
  HostMemoryPlan plan = host_memory_plan(r.model, widest, true, r.train.recompute);
  if (!cpu) plan.activations = 0;
  check_memory_plan(plan, static_cast<double>(memory_limit_bytes()),
                    message("training this model (", size_fields(r.model), ") at batch ", widest,
                            r.eval_batch > r.train.batch ? " (validation's --eval-batch; lower it too)" : "",
                            cpu ? "" : " (host side of a GPU run)"));
  plan = host_memory_plan(r.model, r.train.batch, true, r.train.recompute);
  if (!cpu) plan.activations = 0;
  return plan;
}

void print_config(const TrainRun& r) {
  const HostMemoryPlan plan = checked_host_plan(r);
  const nlohmann::json resolved = {{"model", to_json(r.model)}, {"train", to_json(r.train)},
                                   {"data", {{"format", r.data_format}, {"path", r.data_path}}}};
  std::printf("%s\n", resolved.dump(2).c_str());
  const double params = parameter_count(r.model);
  std::printf("parameters: %.0f (%s fp32)\n", params, format_bytes(4 * params).c_str());
  std::printf("host memory plan (%s, batch %d, recompute %s): %s; this machine has %s\n",
              r.device == "cpu" ? "CPU" : "host side of the GPU run", r.train.batch, r.train.recompute ? "on" : "off",
              plan.describe().c_str(), format_bytes(static_cast<double>(physical_memory_bytes())).c_str());
  if (r.device == "cpu")
    std::printf("(a CPU plan; %s)\n", kHaveCuda ? "--device cuda prints the GPU memory plan"
                                                 : "this spt was built without CUDA, so there is no GPU plan");
  else
    std::printf("GPU memory plan (batch %d): %s\n", r.train.batch, gpu_plan(r).c_str());
}

void check_resume_flags(CLI::App* cmd) {
  for (const char* fixed : {"--preset", "--config", "--layers", "--width", "--heads", "--ctx", "--ff-ratio",
                            "--half-qk", "--pattern", "--stride", "--summary", "--summary-blocks", "--mode",
                            "--dropout", "--pos-sizes", "--sample-rate", "--accumulate", "--lr", "--warmup", "--weight-decay",
                            "--beta1", "--beta2", "--eps", "--seed", "--ema", "--eval-windows", "--bucket-mib",
                            "--print-config"})
    SPT_CHECK(cmd->count(fixed) == 0, "--resume takes the model and training config from the checkpoint: drop ",
              fixed, " (only --steps, --batch, --patience, --data and the logging flags may change)");
}

}  // namespace

void add_train_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("train", "Train a Sparse Transformer (Ctrl-C saves a checkpoint and stops)");
  auto flags = std::make_shared<ModelFlags>();
  auto run = std::make_shared<TrainRun>();
  auto dry_run = std::make_shared<bool>(false);
  add_model_flags(cmd, *flags, true);
  cmd->add_option("--out", run->out_dir,
                  "run directory (required): config.json, metrics.jsonl, loss.png, checkpoint/ (the latest "
                  "checkpoint; `--checkpoint RUN` means this one) and best/ (the checkpoint of the lowest "
                  "validation bits so far: `--checkpoint RUN/best`)");
  cmd->add_flag("--resume", run->resume, "continue the run in --out from its checkpoint (configs come from it)");
  cmd->add_flag("--print-config,--dry-run", *dry_run,
                "print the resolved config, the parameter count and the memory plan, then exit (reads no data, "
                "writes nothing)");
  cmd->add_option("--eval-batch", run->eval_batch, "windows per validation forward pass");
  cmd->add_option("--log-every", run->log_every, "steps between progress lines when not on a terminal (0: automatic)");
  cmd->add_option("--device", run->device, "cpu | cuda (one GPU)");
  cmd->add_option("--precision", run->precision, "fp32 | bf16 | fp16 (default: fp32 on the CPU, bf16 on the GPU)");
  cmd->add_flag("--deterministic", run->deterministic,
                "cuda: make every step repeat bit for bit (attention backward without atomic additions; slower)");
  cmd->add_option("--stop-at", run->stop_at, "save and stop once this many steps are done (resume later; 0: never)");
  cmd->add_option("--time-limit", run->time_limit,
                  "save and stop once this run's training steps took this many seconds (validation not counted; "
                  "0: no limit)");
  cmd->footer(
      "Example: spt train --preset kjv-small --data data/kjv.txt --out runs/kjv\n"
      "Data-parallel: torchrun --nproc-per-node 8 spt train --device cuda ..., mpirun -np 8 spt train ..., or srun; "
      "the global batch is ranks x --batch x --accumulate (README: Training on many GPUs)");
  cmd->callback([cmd, flags, run, dry_run] {
    TrainRun r = *run;
    const dist::LaunchInfo launch = dist::launch_from_environment();
    DataConfig data;
    flags->resolve(cmd, r.model, r.train, data);
    r.data_path = data.path;
    SPT_CHECK(r.eval_batch >= 1, "eval batch ", r.eval_batch, " must be at least 1 (--eval-batch)");
    SPT_CHECK(r.log_every >= 0 && r.stop_at >= 0, "--log-every and --stop-at must be non-negative");
    SPT_CHECK(std::isfinite(r.time_limit) && r.time_limit >= 0, "--time-limit ", r.time_limit,
              " must be a non-negative number of seconds");
    if (r.resume) {
      check_resume_flags(cmd);
      r.model = ModelConfig{};
      r.data_format = cmd->count("--data-format") ? data.format : std::string();
      r.train.steps = cmd->count("--steps") ? r.train.steps : 0;
      r.resume_patience = cmd->count("--patience") ? r.train.patience : -1;
      r.resume_batch = cmd->count("--batch") ? r.train.batch : 0;
    } else {
      r.data_format = data.format;
      if (*dry_run) {
        if (launch.rank == 0) print_config(r);
        return;
      }
      checked_host_plan(r);
    }
    // torchrun, mpirun or srun: this process is one rank of a data-parallel job.
    dist::World world = dist::join_world(launch, r.device);
    const int code = run_training(r, *world.comm);
    world.finish();
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace spt::cli
