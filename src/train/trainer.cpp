// The training loop. Everything a step draws (data windows, dropout masks) is a pure
// function of (seed, step), and the optimizer state is saved whole, so a run stopped
// after N steps and resumed computes exactly what an uninterrupted run computes.
#include "train/trainer.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>

#include "core/error.h"
#include "data/dataset.h"
#include "io/file_util.h"
#include "model/config_json.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/engine.h"
#include "train/evaluator.h"
#include "train/loss_plot.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/run_lock.h"
#include "train/schedule.h"
#include "train/stop_signal.h"

namespace spt {
namespace {

// Dynamic loss scaling in fp16 (as OpenAI's released example does): start at
// 2^16, halve and skip the step on inf/NaN, double after 1000 clean steps.
constexpr double kInitialLossScale = 65536.0;
constexpr int64_t kLossScaleGrowthSteps = 1000;

// Every row is checked as it is written: a full disk stops the run. `on_failure` (set
// once the run can save) saves what can be saved and says what it did. An empty path
// writes nothing (the ranks other than 0 of a data-parallel job).
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path) : out_(path.empty() ? nullptr : std::make_unique<AppendFile>(path)) {}
  void write(const nlohmann::json& row) {
    if (!out_) return;
    try {
      out_->write(row.dump() + '\n');
    } catch (const Error& e) {
      if (!on_failure) throw;
      throw Error(message(e.what(), "; stopped training: ", on_failure()));
    }
  }
  std::function<std::string()> on_failure;

 private:
  std::unique_ptr<AppendFile> out_;
};

// The data path as stored in the checkpoint and config.json: absolute, so that eval and
// --resume work from any directory.
std::string absolute_path(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

// Peak resident set size of this process so far.
int64_t peak_resident_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;  // kilobytes on Linux
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Records a validation result in the running best; true when it is a new best (strictly
// lower bits than every earlier pass of the run, resumed parts included).
bool record_validation(TrainState& state, double bits) {
  state.last_valid_bits = bits;
  if (std::isfinite(state.best_valid_bits) && !(bits < state.best_valid_bits)) {
    ++state.passes_since_best;
    return false;
  }
  state.best_valid_bits = bits;
  state.best_step = state.step;
  state.passes_since_best = 0;
  return true;
}

// "validation 4.12 bits per byte over ...; new best" or "...; best 4.01 at step 200".
std::string describe_validation(const EvalResult& r, const TrainState& state, bool best, bool average,
                                const char* unit) {
  return message("step ", state.step, ": validation ", r.bits_per_dim, " bits per ", unit,
                 average ? " (weight average) " : " ", describe_coverage(r, "--eval-windows"),
                 best ? std::string("; new best, saved to best/")
                      : message("; best ", state.best_valid_bits, " at step ", state.best_step));
}

// "optimizer 1.21 MiB" or, on a rank of a data-parallel job, "optimizer 0.61 MiB (shard 1/2)".
std::string describe_optimizer_memory(const Engine& engine, const dist::Communicator& comm) {
  char text[64];
  std::snprintf(text, sizeof text, "optimizer %.2f MiB", static_cast<double>(engine.optimizer_bytes()) / (1 << 20));
  return comm.world() == 1 ? std::string(text) : message(text, " (shard ", comm.rank() + 1, "/", comm.world(), ")");
}

}  // namespace

int run_training(TrainRun run) {
  const std::unique_ptr<dist::Communicator> alone = dist::make_single_communicator();
  return run_training(std::move(run), *alone);
}

int run_training(TrainRun run, dist::Communicator& comm) {
  namespace fs = std::filesystem;
  SPT_CHECK(!run.out_dir.empty(), "no output directory: use --out DIR");
  const bool lead = comm.rank() == 0;  // rank 0: reads the checkpoint, writes and prints
  const int world = comm.world();
  const std::string checkpoint_dir = (fs::path(run.out_dir) / "checkpoint").string();
  const std::string best_dir = (fs::path(run.out_dir) / "best").string();
  std::optional<RunDirectory> run_directory;
  if (lead) {
    run_directory.emplace(run.out_dir);
    remove_stale_checkpoint_temps(checkpoint_dir, true);
    remove_stale_checkpoint_temps(best_dir, true);
    // config.json and loss.png are written through temporaries of the same naming.
    for (const char* file : {"config.json", "loss.png"})
      remove_stale_checkpoint_temps((fs::path(run.out_dir) / file).string(), true);
  }
  const bool has_checkpoint = lead && (fs::exists(checkpoint_dir) || fs::exists(checkpoint_dir + ".old"));
  TrainState state;
  if (lead && run.resume) {
    SPT_CHECK(has_checkpoint, "--resume: no checkpoint in '", run.out_dir, "': start a new run without --resume");
    const CheckpointInfo info = read_checkpoint_info(checkpoint_dir);
    const int64_t steps = run.train.steps, patience = run.resume_patience;
    run.model = info.model;
    run.train = info.train;
    if (steps > 0) run.train.steps = steps;
    if (patience >= 0) run.train.patience = patience;
    if (run.resume_batch > 0) run.train.batch = run.resume_batch;
    state = info.state;
    if (run.data_path.empty()) run.data_path = state.data_path;
    if (run.data_format.empty()) run.data_format = state.data_format;
  } else if (lead) {
    SPT_CHECK(!has_checkpoint, "'", run.out_dir, "' already holds a checkpoint (",
              fs::exists(checkpoint_dir) ? checkpoint_dir : checkpoint_dir + ".old",
              "): add --resume to continue it or choose another --out");
  }
  share_run_setup(comm, run.model, run.train, state);
  if (!lead && run.resume) {
    if (run.data_path.empty()) run.data_path = state.data_path;
    if (run.data_format.empty()) run.data_format = state.data_format;
  }
  validate(run.model);
  validate(run.train);
  SPT_CHECK(!run.data_path.empty(), "no training data: use --data FILE_OR_DIR");

  const Dataset data = load_dataset(run.data_format, run.data_path);
  adopt_sample_rate(data, run.model);
  check_model_fits(data, run.model);
  state.data_format = data.format;
  state.data_path = absolute_path(data.path);

  Model model(run.model);
  model.recompute = run.train.recompute;
  // Rank 0 starts with the whole moments (loaded or zero) and share_weights hands the
  // other ranks their shards; their states start empty.
  OptimizerState optimizer(lead ? static_cast<int64_t>(model.weights().size()) : 0);
  if (run.resume && lead) {
    load_checkpoint(checkpoint_dir, model, &optimizer);
  } else {
    model.init(run.train.seed);
    if (run.train.ema > 0) optimizer.ema = model.weights();  // the average starts at the initial weights
  }
  const bool average = run.train.ema > 0;
  share_weights(comm, model, optimizer);
  const std::unique_ptr<Engine> engine =
      make_engine({run.device, run.precision, true, run.deterministic, &comm}, model, &optimizer);
  if (!engine->dynamic_loss_scaling()) {
    state.loss_scale = 1.0;
    state.clean_steps = 0;
  } else if (!run.resume || state.loss_scale == 1.0) {
    state.loss_scale = kInitialLossScale;
  }

  const nlohmann::json resolved = {{"model", to_json(run.model)}, {"train", to_json(run.train)},
                                   {"data", {{"format", data.format}, {"path", state.data_path},
                                             {"train_tokens", data.train.size()}, {"valid_tokens", data.valid.size()},
                                             {"test_tokens", data.test.size()}}}};
  if (lead) {
    const std::string config_text = resolved.dump(2) + "\n";
    write_file_atomically((fs::path(run.out_dir) / "config.json").string(), [&](OutputFile& out) {
      out.write(config_text.data(), static_cast<int64_t>(config_text.size()));
    });
    std::printf("spt train: %s\n", resolved.dump().c_str());
    std::printf("model: %lld parameters (%.1f MiB fp32), optimizer state %.1f MiB%s\n",
                static_cast<long long>(model.params().total()), model.weights().size() * 4.0 / (1 << 20),
                model.weights().size() * 8.0 / (1 << 20), world > 1 ? message(", sharded over ", world, " ranks").c_str() : "");
    std::printf("%s from step %lld to %lld, %s%d x %d windows of %d tokens per step, on %s\n",
                run.resume ? "resuming" : "training", static_cast<long long>(state.step),
                static_cast<long long>(run.train.steps), world > 1 ? message(world, " ranks x ").c_str() : "",
                run.train.accumulate, run.train.batch, run.model.ctx, engine->describe().c_str());
    std::fflush(stdout);
    run_directory->keep();
  }

  const std::string metrics_path = (fs::path(run.out_dir) / "metrics.jsonl").string();
  MetricsLog metrics(lead ? metrics_path : std::string());
  StopSignals signals;
  Progress progress(run.train.steps, state.step, run.log_every, !lead);
  const int64_t T = run.model.ctx;
  const int B = run.train.batch;
  std::vector<uint8_t> tokens(static_cast<size_t>(B) * T);  // (B, T)
  std::vector<uint8_t> global_tokens;                        // (world * B, T), data_parallel.h
  const auto run_start = std::chrono::steady_clock::now();
  double train_seconds = 0.0;
  int64_t last_saved = run.resume ? state.step : -1;
  const int64_t first_step = state.step;

  // RUN/best: the whole checkpoint of the step whose validation is the best so far.
  auto save_best = [&] {
    engine->sync_to_host();
    save_gathered_checkpoint(comm, best_dir, model, optimizer, run.train, state);
  };
  // Returns false when a stop signal abandoned the pass (nothing is logged for it).
  auto validate_now = [&] {
    progress.clear();
    if (average) engine->swap_average();
    const EvalResult r = evaluate_with_progress("validation", *engine, T, data.valid, run.eval_batch,
                                                run.train.eval_batches, [&] { return signals.requested(); }, &comm);
    if (average) engine->swap_average();
    if (r.interrupted) return false;
    const bool best = record_validation(state, r.bits_per_dim);
    metrics.write({{"step", state.step}, {"valid_bits", r.bits_per_dim}, {"valid_tokens", r.tokens},
                   {"valid_seconds", r.seconds}, {"valid_weights", average ? "ema" : "raw"}, {"best", best}});
    if (best) save_best();
    progress.note(describe_validation(r, state, best, average, data.images() ? "dim" : "byte"));
    const std::string failed =
        lead ? update_loss_plot(metrics_path, (fs::path(run.out_dir) / "loss.png").string()) : std::string();
    if (!failed.empty()) progress.note("could not update loss.png: " + failed);
    return true;
  };
  auto save_now = [&] {
    engine->sync_to_host();
    save_gathered_checkpoint(comm, checkpoint_dir, model, optimizer, run.train, state);
    last_saved = state.step;
  };
  auto stop_on_signal = [&] {
    save_now();
    progress.note(message("interrupted: saved the checkpoint of step ", state.step, " in ", checkpoint_dir,
                          "; continue with: spt train --out ", run.out_dir, " --resume"));
    return kInterruptedExitCode;
  };
  metrics.on_failure = [&]() -> std::string {
    // Saving is a collective that the other ranks are not in.
    if (world > 1 && last_saved != state.step)
      return message("a data-parallel run cannot save from rank 0 alone; ",
                     last_saved < 0 ? std::string("this run has no checkpoint")
                                    : message("the last checkpoint (step ", last_saved, ") is kept"));
    try {
      if (last_saved != state.step) save_now();
      return message("the checkpoint of step ", state.step, " is in ", checkpoint_dir);
    } catch (const Error& e) {
      return message("the checkpoint could not be saved either (", e.what(), "); ",
                     last_saved < 0 ? std::string("this run has no checkpoint")
                                    : message("the last one (step ", last_saved, ") is kept"));
    }
  };

  while (state.step < run.train.steps) {
    // Rank 0's clock and any rank's signal decide for all, so every rank stops at the same step.
    bool out_of_time = lead && run.time_limit > 0 && train_seconds >= run.time_limit;
    bool signalled = signals.requested();
    any_rank(comm, {&out_of_time, &signalled});
    if ((run.stop_at > 0 && state.step >= run.stop_at) || out_of_time) {
      if (last_saved != state.step) save_now();
      progress.note(message("stopped at step ", state.step, " as asked (", out_of_time ? "--time-limit" : "--stop-at",
                            "); continue with: spt train --out ", run.out_dir, " --resume"));
      return 0;
    }
    if (run.train.patience > 0 && state.passes_since_best >= run.train.patience) {
      if (last_saved != state.step) save_now();
      progress.note(message("stopped early at step ", state.step, ": ", state.passes_since_best,
                            " validation passes without a new best (--patience ", run.train.patience, "); the best, ",
                            state.best_valid_bits, " bits per ", data.images() ? "dim" : "byte", " at step ",
                            state.best_step, ", is in ", best_dir));
      return 0;
    }
    if (signalled) return stop_on_signal();
    const auto step_start = std::chrono::steady_clock::now();
    engine->zero_grads();
    double loss = 0.0;
    const float loss_scale = static_cast<float>(state.loss_scale);
    for (int micro = 0; micro < run.train.accumulate; ++micro) {
      const int64_t draw = state.step * run.train.accumulate + micro;
      rank_batch(data.train, T, B, run.train.seed, draw, comm, tokens.data(), global_tokens);
      // Dropout masks differ between ranks: each rank's windows are other windows.
      const DropoutContext dropout{run.train.seed, draw * world + comm.rank(), run.model.dropout > 0};
      loss += engine->forward_backward(tokens.data(), B, dropout, loss_scale / (run.train.accumulate * world)) /
              run.train.accumulate;
    }
    if (world > 1) loss = dist::all_sum(comm, loss) / world;
    const double lr = learning_rate(run.train.lr, state.step, run.train.warmup, run.train.steps);
    const double grad_norm = std::isfinite(loss) ? engine->step(run.train, lr, loss_scale) : loss;
    if (engine->dynamic_loss_scaling() && std::isfinite(loss) && !std::isfinite(grad_norm) &&
        state.loss_scale > 1.0) {
      // fp16 overflow: the step was not taken; halve the scale and go on.
      state.loss_scale /= 2;
      state.clean_steps = 0;
      ++state.step;
      metrics.write({{"step", state.step}, {"skipped", true}, {"loss_scale", state.loss_scale}});
      continue;
    }
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      progress.note(message("stopping: the loss (", loss, ") or gradient norm (", grad_norm, ") is not finite at step ",
                            state.step + 1, "; the last good checkpoint (step ", last_saved, ") is kept in ",
                            checkpoint_dir, "; try a lower --lr or more --warmup"));
      metrics.write({{"step", state.step + 1}, {"error", "non-finite loss"}});
      return 1;
    }
    if (engine->dynamic_loss_scaling() && ++state.clean_steps >= kLossScaleGrowthSteps) {
      state.loss_scale *= 2;
      state.clean_steps = 0;
    }
    ++state.step;
    state.tokens_seen += int64_t{B} * T * run.train.accumulate * world;
    const double step_seconds = seconds_since(step_start);
    train_seconds += step_seconds;
    const double tokens_per_s = static_cast<double>(B) * T * run.train.accumulate * world / step_seconds;
    const double bits = loss / std::log(2.0);
    metrics.write({{"step", state.step}, {"loss", loss}, {"bits", bits}, {"lr", lr}, {"grad_norm", grad_norm},
                   {"tokens_per_s", tokens_per_s}, {"elapsed_s", seconds_since(run_start)}});
    progress.step(state.step, loss, bits, lr, tokens_per_s);
    if (state.step == first_step + 1)
      progress.note(message("memory: activations ", engine->activation_bytes() / (1 << 20), " MiB (recompute ",
                            model.recompute ? "on" : "off", "), ", describe_optimizer_memory(*engine, comm),
                            ", peak resident ", peak_resident_mib(), " MiB",
                            engine->memory_report().empty() ? "" : "; GPU: " + engine->memory_report()));
    const bool last = state.step == run.train.steps;
    if ((last || (run.train.eval_every > 0 && state.step % run.train.eval_every == 0)) && !validate_now())
      return stop_on_signal();
    if (last || (run.train.save_every > 0 && state.step % run.train.save_every == 0)) save_now();
  }
  if (last_saved != state.step) save_now();
  progress.note(message("done: ", state.step, " steps, ", state.tokens_seen, " tokens, ", format_duration(train_seconds),
                        " of training; validation ", state.last_valid_bits, " bits per ",
                        data.images() ? "dim" : "byte", "; peak resident memory ", peak_resident_mib(),
                        " MiB; checkpoint in ", checkpoint_dir,
                        std::isfinite(state.best_valid_bits)
                            ? message(", the best (", state.best_valid_bits, " at step ", state.best_step, ") in ",
                                      best_dir)
                            : std::string()));
  return 0;
}

}  // namespace spt
