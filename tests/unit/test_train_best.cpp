// What density-model training keeps besides the latest checkpoint: RUN/best (the
// checkpoint of the lowest validation bits), --patience, the --ema weight average (its
// update, its use by validation, eval and sample), full-split validation, and checkpoints
// of an older spt that know none of it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "io/file_util.h"
#include "train/checkpoint.h"
#include "train/engine.h"
#include "train/evaluator.h"
#include "train/optimizer.h"
#include "train/trainer.h"
#include "test_support.h"
#include "train_fixture.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::run_spt;
using testing_support::slurp;

class TrainBest : public testing_support::TrainTest {
 protected:
  // Makes the model of RUN/checkpoint far worse (nearly all probability on byte 0), as a
  // diverging run would, keeping its step and running best: every later validation is worse.
  static void spoil_checkpoint(const std::string& out_dir) {
    const std::string dir = out_dir + "/checkpoint";
    const CheckpointInfo info = read_checkpoint_info(dir);
    Model model(info.model);
    OptimizerState optimizer(model.params().total());
    load_checkpoint(dir, model, &optimizer);
    for (std::vector<float>* weights : {&model.weights(), &optimizer.ema}) {
      if (weights->empty()) continue;
      (*weights)[model.params().find("head.bias").offset] = 30.0f;
    }
    save_checkpoint(dir, model, &optimizer, info.train, info.state);
  }
  static TrainRun resumed(const std::string& out_dir, int64_t steps) {
    TrainRun run;
    run.out_dir = out_dir;
    run.resume = true;
    run.train.steps = steps;
    run.log_every = 1000;
    return run;
  }
  // Bits of `dir`'s weights (the average when it has one) over the run's validation windows.
  double validation_bits(const std::string& dir, const TrainRun& run, bool* average = nullptr) const {
    const CheckpointInfo info = read_checkpoint_info(dir);
    Model model(info.model);
    const LoadedWeights loaded = load_weights(dir, model, true);
    if (average != nullptr) *average = loaded.average;
    const Dataset data = load_dataset("bytes", run.data_path);
    return evaluate_split(model, data.valid, 8, info.train.eval_batches).bits_per_dim;
  }
};

TEST_F(TrainBest, WorseValidationKeepsTheEarlierBestAndPatienceStops) {
  TrainRun run = small_run("run");
  run.train.steps = 20;
  run.train.eval_every = 1;
  run.train.save_every = 1;
  run.train.patience = 3;
  run.stop_at = 3;
  ASSERT_EQ(run_training(run), 0);
  const CheckpointInfo before = read_checkpoint_info(run.out_dir + "/best");
  ASSERT_TRUE(std::isfinite(before.state.best_valid_bits));
  EXPECT_EQ(before.state.best_step, before.state.step);
  EXPECT_EQ(before.state.passes_since_best, 0);
  const int64_t passes = read_checkpoint_info(run.out_dir + "/checkpoint").state.passes_since_best;
  const std::string best_model = slurp(run.out_dir + "/best/model.safetensors");
  // eval of RUN/best reproduces the bits it records.
  EXPECT_EQ(validation_bits(run.out_dir + "/best", run), before.state.best_valid_bits);

  spoil_checkpoint(run.out_dir);
  ASSERT_EQ(run_training(resumed(run.out_dir, 0)), 0);
  // Every pass after the spoiling is worse: the run stops once `patience` passes in all
  // went by without a new best, at that pass.
  const CheckpointInfo after = read_checkpoint_info(run.out_dir + "/checkpoint");
  EXPECT_EQ(after.state.step, 3 + (run.train.patience - passes));
  EXPECT_EQ(after.state.passes_since_best, run.train.patience);
  EXPECT_GT(after.state.last_valid_bits, before.state.best_valid_bits + 10);
  EXPECT_EQ(after.state.best_valid_bits, before.state.best_valid_bits);
  EXPECT_EQ(after.state.best_step, before.state.best_step);
  EXPECT_TRUE(slurp(run.out_dir + "/best/model.safetensors") == best_model) << "best/ was overwritten";
  EXPECT_EQ(read_checkpoint_info(run.out_dir + "/best").state.step, before.state.step);

  // Resumed as it is, the run has nothing left to do; a new --patience lets it go on.
  ASSERT_EQ(run_training(resumed(run.out_dir, 0)), 0);
  EXPECT_EQ(read_checkpoint_info(run.out_dir + "/checkpoint").state.step, after.state.step);
  TrainRun more = resumed(run.out_dir, after.state.step + 1);
  more.resume_patience = 0;
  ASSERT_EQ(run_training(more), 0);
  const CheckpointInfo last = read_checkpoint_info(run.out_dir + "/checkpoint");
  EXPECT_EQ(last.state.step, after.state.step + 1);
  EXPECT_EQ(last.train.patience, 0);
}

// ema = decay * ema + (1 - decay) * w after every step, from the initial weights, in the
// engine's step; swapping the average in and out restores the weights bit for bit.
TEST_F(TrainBest, AverageFollowsTheWeightsAfterEveryStep) {
  const TrainRun run = small_run("unused");
  Model model(run.model);
  model.init(5);
  OptimizerState optimizer(model.params().total());
  optimizer.ema = model.weights();
  const std::unique_ptr<Engine> engine = make_engine({"cpu", "", true}, model, &optimizer);
  TrainConfig train = run.train;
  train.ema = 0.75;
  const Dataset data = load_dataset("bytes", run.data_path);
  std::vector<uint8_t> tokens(static_cast<size_t>(run.train.batch) * run.model.ctx);
  std::vector<double> expected(optimizer.ema.begin(), optimizer.ema.end());
  std::vector<double> magnitude(expected.size(), 0.0);  // the largest term each element saw
  for (int step = 0; step < 3; ++step) {
    training_batch(data.train, run.model.ctx, run.train.batch, 1, step, tokens.data());
    engine->zero_grads();
    engine->forward_backward(tokens.data(), run.train.batch, {}, 1.0f);
    engine->step(train, 1e-2, 1.0f);
    for (size_t i = 0; i < expected.size(); ++i) {
      magnitude[i] = std::max({magnitude[i], std::fabs(expected[i]), std::fabs(double{model.weights()[i]})});
      expected[i] = 0.75 * expected[i] + 0.25 * model.weights()[i];
    }
  }
  int64_t off = 0;  // elements beyond three fp32 roundings of the running value
  for (size_t i = 0; i < expected.size(); ++i)
    off += std::fabs(optimizer.ema[i] - expected[i]) > 3 * 0x1p-24 * magnitude[i];
  EXPECT_EQ(off, 0);
  EXPECT_TRUE(optimizer.ema != model.weights());

  const std::vector<float> weights = model.weights(), average = optimizer.ema;
  engine->swap_average();
  EXPECT_TRUE(model.weights() == average);
  engine->swap_average();
  EXPECT_TRUE(model.weights() == weights);
  EXPECT_TRUE(optimizer.ema == average);
}

TEST_F(TrainBest, AverageUpdateFormula) {
  std::vector<float> weights = {4.0f, -1.0f, 0.0f, 1e-3f}, ema = {2.0f, 1.0f, 5.0f, 1e-3f};
  ema_update(weights, ema, 0.5);
  EXPECT_EQ(ema, (std::vector<float>{3.0f, 0.0f, 2.5f, 1e-3f}));
  ema_update(weights, ema, 0.0);
  EXPECT_EQ(ema, weights);
  std::vector<float> short_ema(2);
  EXPECT_THROW(ema_update(weights, short_ema, 0.5), Error);
  EXPECT_THROW(ema_update(weights, ema, 1.0), Error);
}

// Validation, best/ and eval score the average; sample uses it too; --raw-weights and a
// named model.safetensors take the trained weights.
TEST_F(TrainBest, EvalAndSampleUseTheAverage) {
  TrainRun run = small_run("run");
  run.train.ema = 0.6;
  ASSERT_EQ(run_training(run), 0);
  const std::string best = run.out_dir + "/best";
  bool average = false;
  EXPECT_EQ(validation_bits(best, run, &average), read_checkpoint_info(best).state.best_valid_bits);
  EXPECT_TRUE(average);
  EXPECT_TRUE(read_checkpoint_info(best).has_ema);

  const std::string scratch = dir_.string();
  const std::string eval = "eval --split valid --json --checkpoint ";
  const auto json_of = [](const testing_support::CliResult& r) { return nlohmann::json::parse(r.out); };
  const testing_support::CliResult ema_eval = run_spt(scratch, eval + run.out_dir);
  ASSERT_EQ(ema_eval.code, 0) << ema_eval.err;
  const testing_support::CliResult raw_eval = run_spt(scratch, eval + run.out_dir + " --raw-weights");
  ASSERT_EQ(raw_eval.code, 0) << raw_eval.err;
  const testing_support::CliResult named =
      run_spt(scratch, eval + run.out_dir + "/checkpoint/model.safetensors");
  ASSERT_EQ(named.code, 0) << named.err;
  const testing_support::CliResult lone = run_spt(
      scratch, eval + run.out_dir + "/checkpoint/model_ema.safetensors --data " + run.data_path);
  ASSERT_EQ(lone.code, 0) << lone.err;
  EXPECT_EQ(json_of(ema_eval)["weights"], "ema");
  EXPECT_EQ(json_of(raw_eval)["weights"], "raw");
  EXPECT_EQ(json_of(named)["weights"], "raw");
  EXPECT_NE(json_of(ema_eval)["bits_per_dim"], json_of(raw_eval)["bits_per_dim"]);
  EXPECT_EQ(json_of(named)["bits_per_dim"], json_of(raw_eval)["bits_per_dim"]);
  EXPECT_EQ(json_of(lone)["bits_per_dim"], json_of(ema_eval)["bits_per_dim"]);

  const std::string sample = "sample --length 30 --seed 3 --checkpoint " + run.out_dir + " --out ";
  const testing_support::CliResult ema_sample = run_spt(scratch, sample + "ema.txt");
  ASSERT_EQ(ema_sample.code, 0) << ema_sample.err;
  EXPECT_NE(ema_sample.err.find("weight average"), std::string::npos) << ema_sample.err;
  const testing_support::CliResult raw_sample = run_spt(scratch, sample + "raw.txt --raw-weights");
  ASSERT_EQ(raw_sample.code, 0) << raw_sample.err;
  EXPECT_NE(raw_sample.err.find("trained weights"), std::string::npos) << raw_sample.err;
}

// A checkpoint of an spt before best/ and the average: state.json without the best
// fields (its checksum matching, as that spt wrote it) reads, evaluates its trained
// weights and resumes, the first pass after it becoming the best.
TEST_F(TrainBest, OlderCheckpointsStillLoadAndResume) {
  TrainRun run = small_run("run");
  run.stop_at = 2;
  ASSERT_EQ(run_training(run), 0);
  const std::string state_path = run.out_dir + "/checkpoint/state.json";
  nlohmann::json state = nlohmann::json::parse(slurp(state_path));
  for (const char* key : {"best_valid_bits", "best_step", "passes_since_best", "state_crc32"}) state.erase(key);
  ASSERT_FALSE(state["train"].contains("ema"));
  const std::string compact = state.dump();
  state["state_crc32"] = crc32_update(0, compact.data(), static_cast<int64_t>(compact.size()));
  std::ofstream(state_path) << state.dump(2) << "\n";
  fs::remove_all(run.out_dir + "/best");

  const CheckpointInfo info = read_checkpoint_info(run.out_dir);
  EXPECT_FALSE(std::isfinite(info.state.best_valid_bits));
  EXPECT_FALSE(info.has_ema);
  Model model(info.model);
  const LoadedWeights loaded = load_weights(run.out_dir, model, true);
  EXPECT_FALSE(loaded.average);
  EXPECT_EQ(fs::path(loaded.file).filename(), "model.safetensors");
  ASSERT_EQ(run_training(resumed(run.out_dir, 4)), 0);
  EXPECT_EQ(read_checkpoint_info(run.out_dir + "/best").state.best_step, 4);
}

TEST_F(TrainBest, ResumeRefusesACheckpointThatLostItsAverage) {
  TrainRun run = small_run("run");
  run.train.ema = 0.9;
  run.stop_at = 2;
  ASSERT_EQ(run_training(run), 0);
  const std::string dir = run.out_dir + "/checkpoint";
  const CheckpointInfo info = read_checkpoint_info(dir);
  Model model(info.model);
  OptimizerState optimizer(model.params().total());
  load_checkpoint(dir, model, &optimizer);
  ASSERT_EQ(optimizer.ema.size(), model.weights().size());
  optimizer.ema.clear();
  save_checkpoint(dir, model, &optimizer, info.train, info.state);
  const std::string message = testing_support::error_of([&] { run_training(resumed(run.out_dir, 0)); });
  EXPECT_NE(message.find("model_ema.safetensors"), std::string::npos) << message;
}

// --eval-windows 0 scores every full window of the valid split.
TEST_F(TrainBest, FullSplitValidation) {
  TrainRun run = small_run("run");
  run.train.eval_batches = 0;
  run.train.steps = 2;
  ASSERT_EQ(run_training(run), 0);
  const Dataset data = load_dataset("bytes", run.data_path);
  Model model(run.model);
  load_checkpoint(run.out_dir, model, nullptr);
  const EvalResult whole = evaluate_split(model, data.valid, 8, 0);
  ASSERT_GT(whole.windows, 4);
  EXPECT_EQ(whole.windows, whole.split_windows);
  int64_t logged_tokens = 0;
  std::ifstream metrics(run.out_dir + "/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.contains("valid_tokens")) logged_tokens = row["valid_tokens"].get<int64_t>();
  }
  EXPECT_EQ(logged_tokens, whole.tokens);
  EXPECT_EQ(read_checkpoint_info(run.out_dir).state.last_valid_bits, whole.bits_per_dim);
}

TEST_F(TrainBest, FlagsAndTheirLimits) {
  const std::string scratch = dir_.string();
  const std::string base = "train --preset tiny --print-config --data " + small_run("x").data_path;
  const testing_support::CliResult printed = run_spt(scratch, base + " --eval-windows 0 --ema 0.999 --patience 4");
  ASSERT_EQ(printed.code, 0) << printed.err;
  EXPECT_NE(printed.out.find("\"eval_batches\": 0"), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("\"ema\": 0.999"), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("\"patience\": 4"), std::string::npos) << printed.out;
  EXPECT_EQ(run_spt(scratch, base + " --eval-batches 0").code, 0);  // the older name
  const testing_support::CliResult bad = run_spt(scratch, base + " --ema 1");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("--ema"), std::string::npos) << bad.err;
  EXPECT_NE(run_spt(scratch, base + " --patience -1").err.find("--patience"), std::string::npos);
  const testing_support::CliResult resume = run_spt(scratch, "train --resume --ema 0.9 --out " + scratch + "/r");
  EXPECT_NE(resume.err.find("drop --ema"), std::string::npos) << resume.err;
  const testing_support::CliResult help = run_spt(scratch, "train --help");
  for (const char* flag : {"--ema", "--patience", "--eval-windows", "best/"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace spt
