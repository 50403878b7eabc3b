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
#include <optional>

#include "core/error.h"
#include "data/dataset.h"
#include "dist/bucket_plan.h"
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

// Rank 0 reads (--resume) or checks the run directory's checkpoint, the configs and state
// are agreed with the other ranks, and the run's values are validated. Returns the state to
// continue from (a fresh one for a new run).
TrainState resolve_run(TrainRun& run, dist::Communicator& comm, const std::string& checkpoint_dir) {
  namespace fs = std::filesystem;
  const bool lead = comm.rank() == 0;
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
  return state;
}

// Rank 0's config.json and the opening lines: the resolved configs, the model's size and
// what each step trains on.
void announce_run(const TrainRun& run, const Model& model, const Engine& engine, const Dataset& data,
                  const TrainState& state, int world) {
  const nlohmann::json resolved = {{"model", to_json(run.model)}, {"train", to_json(run.train)},
                                   {"data", {{"format", data.format}, {"path", state.data_path},
                                             {"train_tokens", data.train.size()}, {"valid_tokens", data.valid.size()},
                                             {"test_tokens", data.test.size()}}}};
  const std::string config_text = resolved.dump(2) + "\n";
  write_file_atomically((std::filesystem::path(run.out_dir) / "config.json").string(), [&](OutputFile& out) {
    out.write(config_text.data(), static_cast<int64_t>(config_text.size()));
  });
  std::printf("spt train: %s\n", resolved.dump().c_str());
  std::printf("model: %lld parameters (%.1f MiB fp32), optimizer state %.1f MiB%s\n",
              static_cast<long long>(model.params().total()), model.weights().size() * 4.0 / (1 << 20),
              model.weights().size() * 8.0 / (1 << 20), world > 1 ? message(", sharded over ", world, " ranks").c_str() : "");
  std::printf("%s from step %lld to %lld, %s%d x %d windows of %d tokens per step, on %s\n",
              run.resume ? "resuming" : "training", static_cast<long long>(state.step),
              static_cast<long long>(run.train.steps), world > 1 ? message(world, " ranks x ").c_str() : "",
              run.train.accumulate, run.train.batch, run.model.ctx, engine.describe().c_str());
  std::fflush(stdout);
}

// The steps of one run after its setup: each method is one thing the loop may do (a step,
// a validation pass, a save, a stop), sharing the run's state.
class TrainingLoop {
 public:
  TrainingLoop(const TrainRun& run, dist::Communicator& comm, const Dataset& data, Model& model,
               OptimizerState& optimizer, Engine& engine, TrainState& state)
      : run_(run), comm_(comm), lead_(comm.rank() == 0), world_(comm.world()), data_(data), model_(model),
        optimizer_(optimizer), engine_(engine), state_(state),
        checkpoint_dir_((std::filesystem::path(run.out_dir) / "checkpoint").string()),
        best_dir_((std::filesystem::path(run.out_dir) / "best").string()),
        metrics_path_((std::filesystem::path(run.out_dir) / "metrics.jsonl").string()),
        metrics_(lead_ ? metrics_path_ : std::string()),
        progress_(run.train.steps, state.step, run.log_every, !lead_),
        tokens_(static_cast<size_t>(run.train.batch) * run.model.ctx),
        last_saved_(run.resume ? state.step : -1),
        first_step_(state.step) {
    metrics_.on_failure = [this] { return save_after_failure(); };
  }

  int run() {
    while (state_.step < run_.train.steps) {
      if (const std::optional<int> code = stop_if_asked()) return *code;
      if (const std::optional<int> code = train_step()) return *code;
      const bool last = state_.step == run_.train.steps;
      if ((last || (run_.train.eval_every > 0 && state_.step % run_.train.eval_every == 0)) && !validate_now())
        return stop_on_signal();
      if (last || (run_.train.save_every > 0 && state_.step % run_.train.save_every == 0)) save_now();
    }
    if (last_saved_ != state_.step) save_now();
    progress_.note(message("done: ", state_.step, " steps, ", state_.tokens_seen, " tokens, ",
                           format_duration(train_seconds_), " of training; validation ", state_.last_valid_bits,
                           " bits per ", unit(), "; peak resident memory ", peak_resident_mib(),
                           " MiB; checkpoint in ", checkpoint_dir_,
                           std::isfinite(state_.best_valid_bits)
                               ? message(", the best (", state_.best_valid_bits, " at step ", state_.best_step, ") in ",
                                         best_dir_)
                               : std::string()));
    return 0;
  }

 private:
  const char* unit() const { return data_.images() ? "dim" : "byte"; }

  // The whole checkpoint of this step in `dir` (a collective: every rank calls it).
  void save_to(const std::string& dir) {
    engine_.sync_to_host();
    save_gathered_checkpoint(comm_, dir, model_, optimizer_, run_.train, state_);
  }

  void save_now() {
    save_to(checkpoint_dir_);
    last_saved_ = state_.step;
  }

  int stop_on_signal() {
    save_now();
    progress_.note(message("interrupted: saved the checkpoint of step ", state_.step, " in ", checkpoint_dir_,
                           "; continue with: spt train --out ", run_.out_dir, " --resume"));
    return kInterruptedExitCode;
  }

  // What MetricsLog says when a row cannot be written: the save it managed, or why not.
  std::string save_after_failure() {
    // Saving is a collective that the other ranks are not in.
    if (world_ > 1 && last_saved_ != state_.step)
      return message("a data-parallel run cannot save from rank 0 alone; ",
                     last_saved_ < 0 ? std::string("this run has no checkpoint")
                                     : message("the last checkpoint (step ", last_saved_, ") is kept"));
    try {
      if (last_saved_ != state_.step) save_now();
      return message("the checkpoint of step ", state_.step, " is in ", checkpoint_dir_);
    } catch (const Error& e) {
      return message("the checkpoint could not be saved either (", e.what(), "); ",
                     last_saved_ < 0 ? std::string("this run has no checkpoint")
                                     : message("the last one (step ", last_saved_, ") is kept"));
    }
  }

  // A validation pass (with the weight average when there is one), its row and best/;
  // false when a stop signal abandoned it (nothing is logged for it).
  bool validate_now() {
    const bool average = run_.train.ema > 0;
    progress_.clear();
    if (average) engine_.swap_average();
    const EvalResult r = evaluate_with_progress("validation", engine_, run_.model.ctx, data_.valid, run_.eval_batch,
                                                run_.train.eval_batches, [&] { return signals_.requested(); }, &comm_);
    if (average) engine_.swap_average();
    if (r.interrupted) return false;
    const bool best = record_validation(state_, r.bits_per_dim);
    metrics_.write({{"step", state_.step}, {"valid_bits", r.bits_per_dim}, {"valid_tokens", r.tokens},
                    {"valid_seconds", r.seconds}, {"valid_weights", average ? "ema" : "raw"}, {"best", best}});
    if (best) save_to(best_dir_);
    progress_.note(describe_validation(r, state_, best, average, unit()));
    const std::string failed =
        lead_ ? update_loss_plot(metrics_path_, (std::filesystem::path(run_.out_dir) / "loss.png").string())
              : std::string();
    if (!failed.empty()) progress_.note("could not update loss.png: " + failed);
    return true;
  }

  // The exit code when the run stops before this step (--stop-at, --time-limit,
  // --patience, a signal), else nothing.
  std::optional<int> stop_if_asked() {
    // Rank 0's clock and any rank's signal decide for all, so every rank stops at the same step.
    bool out_of_time = lead_ && run_.time_limit > 0 && train_seconds_ >= run_.time_limit;
    bool signalled = signals_.requested();
    any_rank(comm_, {&out_of_time, &signalled});
    if ((run_.stop_at > 0 && state_.step >= run_.stop_at) || out_of_time) {
      if (last_saved_ != state_.step) save_now();
      progress_.note(message("stopped at step ", state_.step, " as asked (", out_of_time ? "--time-limit" : "--stop-at",
                             "); continue with: spt train --out ", run_.out_dir, " --resume"));
      return 0;
    }
    if (run_.train.patience > 0 && state_.passes_since_best >= run_.train.patience) {
      if (last_saved_ != state_.step) save_now();
      progress_.note(message("stopped early at step ", state_.step, ": ", state_.passes_since_best,
                             " validation passes without a new best (--patience ", run_.train.patience,
                             "); the best, ", state_.best_valid_bits, " bits per ", unit(), " at step ",
                             state_.best_step, ", is in ", best_dir_));
      return 0;
    }
    if (signalled) return stop_on_signal();
    return std::nullopt;
  }

  // The mean loss of this step's windows (every micro-batch, every rank), gradients summed.
  double forward_backward(float loss_scale) {
    const int B = run_.train.batch, accumulate = run_.train.accumulate;
    double loss = 0.0;
    for (int micro = 0; micro < accumulate; ++micro) {
      const int64_t draw = state_.step * accumulate + micro;
      rank_batch(data_.train, run_.model.ctx, B, run_.train.seed, draw, comm_, tokens_.data(), global_tokens_);
      // Dropout masks differ between ranks: each rank's windows are other windows.
      const DropoutContext dropout{run_.train.seed, draw * world_ + comm_.rank(), run_.model.dropout > 0};
      if (micro == accumulate - 1) engine_.reduce_during_next_backward();
      loss += engine_.forward_backward(tokens_.data(), B, dropout, loss_scale / (accumulate * world_)) / accumulate;
    }
    return world_ > 1 ? dist::all_sum(comm_, loss) / world_ : loss;
  }

  // One optimizer step and its row; the exit code when the run cannot go on, else nothing.
  std::optional<int> train_step() {
    const auto step_start = std::chrono::steady_clock::now();
    engine_.zero_grads();
    const float loss_scale = static_cast<float>(state_.loss_scale);
    const double loss = forward_backward(loss_scale);
    const double lr = learning_rate(run_.train.lr, state_.step, run_.train.warmup, run_.train.steps);
    const double grad_norm = std::isfinite(loss) ? engine_.step(run_.train, lr, loss_scale) : loss;
    if (engine_.dynamic_loss_scaling() && std::isfinite(loss) && !std::isfinite(grad_norm) &&
        state_.loss_scale > 1.0) {
      // fp16 overflow: the step was not taken; halve the scale and go on.
      state_.loss_scale /= 2;
      state_.clean_steps = 0;
      ++state_.step;
      metrics_.write({{"step", state_.step}, {"skipped", true}, {"loss_scale", state_.loss_scale}});
      return std::nullopt;
    }
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      progress_.note(message("stopping: the loss (", loss, ") or gradient norm (", grad_norm,
                             ") is not finite at step ", state_.step + 1, "; the last good checkpoint (step ",
                             last_saved_, ") is kept in ", checkpoint_dir_, "; try a lower --lr or more --warmup"));
      metrics_.write({{"step", state_.step + 1}, {"error", "non-finite loss"}});
      return 1;
    }
    if (engine_.dynamic_loss_scaling() && ++state_.clean_steps >= kLossScaleGrowthSteps) {
      state_.loss_scale *= 2;
      state_.clean_steps = 0;
    }
    record_step(loss, lr, grad_norm, seconds_since(step_start));
    return std::nullopt;
  }

  // Counts a taken step and writes its row, progress line and (first step) memory line.
  void record_step(double loss, double lr, double grad_norm, double step_seconds) {
    const int64_t step_tokens = int64_t{run_.train.batch} * run_.model.ctx * run_.train.accumulate * world_;
    ++state_.step;
    state_.tokens_seen += step_tokens;
    train_seconds_ += step_seconds;
    const double tokens_per_s = static_cast<double>(step_tokens) / step_seconds;
    const double bits = loss / std::log(2.0);
    metrics_.write({{"step", state_.step}, {"loss", loss}, {"bits", bits}, {"lr", lr}, {"grad_norm", grad_norm},
                    {"tokens_per_s", tokens_per_s}, {"elapsed_s", seconds_since(run_start_)}});
    progress_.step(state_.step, loss, bits, lr, tokens_per_s);
    if (state_.step == first_step_ + 1)
      progress_.note(message("memory: activations ", engine_.activation_bytes() / (1 << 20), " MiB (recompute ",
                             model_.recompute ? "on" : "off", "), ", describe_optimizer_memory(engine_, comm_),
                             ", peak resident ", peak_resident_mib(), " MiB",
                             engine_.memory_report().empty() ? "" : "; GPU: " + engine_.memory_report()));
  }

  const TrainRun& run_;
  dist::Communicator& comm_;
  const bool lead_;  // rank 0: writes and prints
  const int world_;
  const Dataset& data_;
  Model& model_;
  OptimizerState& optimizer_;
  Engine& engine_;
  TrainState& state_;
  const std::string checkpoint_dir_, best_dir_, metrics_path_;
  MetricsLog metrics_;
  StopSignals signals_;
  Progress progress_;
  std::vector<uint8_t> tokens_;         // (B, T)
  std::vector<uint8_t> global_tokens_;  // (world * B, T), data_parallel.h
  const std::chrono::steady_clock::time_point run_start_ = std::chrono::steady_clock::now();
  double train_seconds_ = 0.0;
  int64_t last_saved_;
  const int64_t first_step_;
};

}  // namespace

int run_training(TrainRun run) {
  const std::unique_ptr<dist::Communicator> alone = dist::make_single_communicator();
  return run_training(std::move(run), *alone);
}

int run_training(TrainRun run, dist::Communicator& comm) {
  namespace fs = std::filesystem;
  SPT_CHECK(!run.out_dir.empty(), "no output directory: use --out DIR");
  const bool lead = comm.rank() == 0;  // rank 0: reads the checkpoint, writes and prints
  const std::string checkpoint_dir = (fs::path(run.out_dir) / "checkpoint").string();
  std::optional<RunDirectory> run_directory;
  if (lead) {
    run_directory.emplace(run.out_dir);
    remove_stale_checkpoint_temps(checkpoint_dir, true);
    remove_stale_checkpoint_temps((fs::path(run.out_dir) / "best").string(), true);
    // config.json and loss.png are written through temporaries of the same naming.
    for (const char* file : {"config.json", "loss.png"})
      remove_stale_checkpoint_temps((fs::path(run.out_dir) / file).string(), true);
  }
  TrainState state = resolve_run(run, comm, checkpoint_dir);

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
  share_weights(comm, model, optimizer);
  const std::unique_ptr<Engine> engine =
      make_engine({run.device, run.precision, true, run.deterministic, &comm, dist::bucket_floats(run.train.bucket_mib)},
                  model, &optimizer);
  if (!engine->dynamic_loss_scaling()) {
    state.loss_scale = 1.0;
    state.clean_steps = 0;
  } else if (!run.resume || state.loss_scale == 1.0) {
    state.loss_scale = kInitialLossScale;
  }
  if (lead) {
    announce_run(run, model, *engine, data, state, comm.world());
    run_directory->keep();
  }
  return TrainingLoop(run, comm, data, model, optimizer, *engine, state).run();
}

}  // namespace spt
