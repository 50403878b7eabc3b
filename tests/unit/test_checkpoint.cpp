// Checkpoints: bitwise round trips, refusal of damaged or mismatched checkpoints, a
// failed save that leaves the previous checkpoint intact, recovery of an interrupted
// swap, and the files as Python's standard library reads them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "model/config_json.h"
#include "model/presets.h"
#include "train/checkpoint.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::expect_error;
using testing_support::read_bytes;
using testing_support::small_strided_config;
using testing_support::TempDir;
using testing_support::write_bytes;

void fill(std::vector<float>& values, uint64_t seed) {
  const uint64_t key = rng_key(seed, 0x74657374);
  for (size_t i = 0; i < values.size(); ++i) values[i] = normal01(key, i);
}

OptimizerState random_optimizer(const Model& model, uint64_t seed) {
  OptimizerState state(model.params().total());
  fill(state.exp_avg, seed);
  fill(state.exp_avg_sq, seed + 1);
  for (float& v : state.exp_avg_sq) v = v * v;
  state.step = 11;  // Adam skips a step whose gradients are not finite: at most the 12 of sample_state
  return state;
}

TrainState sample_state() {
  TrainState s;
  s.step = 12;
  s.tokens_seen = 123456789012;
  s.data_format = "bytes";
  s.data_path = "/data/kjv.txt";
  s.last_valid_bits = 2.125;
  return s;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Everything in a directory, file by file, to check that nothing was modified.
std::vector<std::pair<std::string, std::vector<char>>> snapshot(const std::string& dir) {
  std::vector<std::pair<std::string, std::vector<char>>> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.emplace_back(entry.path().string(), read_bytes(entry.path()));
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct Saved {
  TempDir dir{"ckpt"};
  Model model{small_strided_config()};
  OptimizerState optimizer;
  TrainConfig train;
  std::string path = dir / "checkpoint";
  Saved() {
    model.init(7);
    optimizer = random_optimizer(model, 3);
    train.lr = 3.5e-4;
    train.steps = 777;
    train.seed = 0xFFFFFFFFFFFFULL;
    save_checkpoint(path, model, &optimizer, train, sample_state());
  }
};

TEST(Checkpoint, LoadsIdenticalWeightsOptimizerAndState) {
  Saved saved;
  EXPECT_EQ(names_in(saved.dir.path()), (std::vector<std::string>{"checkpoint"})) << "no temporary or .old left";
  EXPECT_EQ(names_in(saved.path), (std::vector<std::string>{"model.safetensors", "optimizer.safetensors", "state.json"}));

  const CheckpointInfo info = read_checkpoint_info(saved.path);
  EXPECT_EQ(to_json(info.model), to_json(small_strided_config()));
  EXPECT_EQ(to_json(info.train), to_json(saved.train));
  EXPECT_EQ(info.state.step, 12);
  EXPECT_EQ(info.state.tokens_seen, 123456789012);
  EXPECT_EQ(info.state.data_format, "bytes");
  EXPECT_EQ(info.state.data_path, "/data/kjv.txt");
  EXPECT_EQ(info.state.last_valid_bits, 2.125);
  EXPECT_TRUE(info.has_optimizer);

  Model fresh(info.model);
  fresh.init(99);
  ASSERT_FALSE(same_bits(fresh.weights(), saved.model.weights()));
  OptimizerState loaded;
  load_checkpoint(saved.path, fresh, &loaded);
  EXPECT_TRUE(same_bits(fresh.weights(), saved.model.weights()));
  EXPECT_TRUE(same_bits(loaded.exp_avg, saved.optimizer.exp_avg));
  EXPECT_TRUE(same_bits(loaded.exp_avg_sq, saved.optimizer.exp_avg_sq));
  EXPECT_EQ(loaded.step, 11);
}

TEST(Checkpoint, SavingAgainReplacesTheCheckpoint) {
  Saved saved;
  Model second(small_strided_config());
  second.init(8);
  TrainState state = sample_state();
  state.step = 24;
  state.last_valid_bits = NAN;  // not evaluated: stored as null, read back as NaN
  save_checkpoint(saved.path + "/", second, &saved.optimizer, saved.train, state);
  EXPECT_EQ(names_in(saved.dir.path()), (std::vector<std::string>{"checkpoint"}));
  Model fresh(small_strided_config());
  load_checkpoint(saved.path, fresh, nullptr);
  EXPECT_TRUE(same_bits(fresh.weights(), second.weights()));
  const CheckpointInfo info = read_checkpoint_info(saved.path);
  EXPECT_EQ(info.state.step, 24);
  EXPECT_TRUE(std::isnan(info.state.last_valid_bits));
}

TEST(Checkpoint, FlippedByteIsRefusedByTheChecksum) {
  Saved saved;
  const std::string file = saved.path + "/model.safetensors";
  std::vector<char> bytes = read_bytes(file);
  bytes[bytes.size() - 5] ^= 0x01;  // one bit of the last tensor's data
  write_bytes(file, bytes);
  const auto before = snapshot(saved.path);
  Model fresh(small_strided_config());
  OptimizerState loaded;
  expect_error([&] { load_checkpoint(saved.path, fresh, &loaded); }, {file, "CRC-32", "damaged"});
  EXPECT_EQ(snapshot(saved.path), before) << "loading must not modify files";
  EXPECT_FALSE(same_bits(fresh.weights(), saved.model.weights())) << "nothing is loaded from a refused checkpoint";

  const std::string optimizer_file = saved.path + "/optimizer.safetensors";
  save_checkpoint(saved.path, saved.model, &saved.optimizer, saved.train, sample_state());
  bytes = read_bytes(optimizer_file);
  bytes[100] ^= 0x40;
  write_bytes(optimizer_file, bytes);
  expect_error([&] { load_checkpoint(saved.path, fresh, &loaded); }, {optimizer_file, "CRC-32"});
}

TEST(Checkpoint, TruncatedFileIsRefused) {
  Saved saved;
  const std::string file = saved.path + "/optimizer.safetensors";
  std::vector<char> bytes = read_bytes(file);
  bytes.resize(bytes.size() - 4);
  write_bytes(file, bytes);
  Model fresh(small_strided_config());
  OptimizerState loaded;
  expect_error([&] { read_checkpoint_info(saved.path); }, {file, "bytes but state.json records"});
  expect_error([&] { load_checkpoint(saved.path, fresh, &loaded); }, {file, "bytes but state.json records"});
}

TEST(Checkpoint, MissingFilesAreRefused) {
  {
    Saved saved;
    fs::remove(saved.path + "/state.json");
    Model fresh(small_strided_config());
    expect_error([&] { load_checkpoint(saved.path, fresh, nullptr); }, {saved.path + "/state.json", "incomplete"});
    expect_error([&] { read_checkpoint_info(saved.path); }, {"state.json"});
  }
  {
    Saved saved;
    fs::remove(saved.path + "/model.safetensors");
    Model fresh(small_strided_config());
    expect_error([&] { load_checkpoint(saved.path, fresh, nullptr); }, {saved.path + "/model.safetensors", "missing"});
  }
  {
    Saved saved;
    std::vector<char> state = read_bytes(saved.path + "/state.json");
    state.resize(state.size() / 2);
    write_bytes(saved.path + "/state.json", state);
    expect_error([&] { read_checkpoint_info(saved.path); }, {"state.json", "not valid JSON"});
  }
  TempDir empty("ckpt");
  Model fresh(small_strided_config());
  expect_error([&] { load_checkpoint(empty / "nothing", fresh, nullptr); }, {"no checkpoint at", "nothing"});
}

TEST(Checkpoint, DifferentModelConfigIsRefused) {
  Saved saved;
  ModelConfig other = small_strided_config();
  other.layers = 3;
  Model fresh(other);
  expect_error([&] { load_checkpoint(saved.path, fresh, nullptr); }, {saved.path, "different model", "layers 2 vs 3"});
  ModelConfig same_shapes = small_strided_config();
  same_shapes.pattern = "fixed";  // identical tensors, different network
  same_shapes.summary = 2;
  Model fixed(same_shapes);
  expect_error([&] { load_checkpoint(saved.path, fixed, nullptr); }, {"pattern \"strided\" vs \"fixed\""});
}

TEST(Checkpoint, WeightsOnlyCheckpointCannotResume) {
  TempDir dir("ckpt");
  Model model(small_strided_config());
  model.init(5);
  save_checkpoint(dir / "c", model, nullptr, TrainConfig{}, TrainState{});
  EXPECT_FALSE(fs::exists(dir / "c/optimizer.safetensors"));
  EXPECT_FALSE(read_checkpoint_info(dir / "c").has_optimizer);
  Model fresh(small_strided_config());
  OptimizerState optimizer;
  expect_error([&] { load_checkpoint(dir / "c", fresh, &optimizer); }, {"no optimizer state"});
  load_checkpoint(dir / "c", fresh, nullptr);
  EXPECT_TRUE(same_bits(fresh.weights(), model.weights()));
}

TEST(Checkpoint, FailedSaveKeepsThePreviousCheckpoint) {
  Saved saved;
  const auto before = snapshot(saved.path);
  Model second(small_strided_config());
  second.init(8);

  // The disk "fills up" while the new checkpoint is written: a file-size limit makes
  // write() fail with EFBIG (root ignores permissions, not this limit).
  rlimit old_limit{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit small = old_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  std::string text;
  try {
    save_checkpoint(saved.path, second, &saved.optimizer, saved.train, sample_state());
  } catch (const Error& e) {
    threw = true;
    text = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  ASSERT_TRUE(threw);
  EXPECT_NE(text.find("cannot save a checkpoint to '" + saved.path + "'"), std::string::npos) << text;
  EXPECT_NE(text.find("model.safetensors"), std::string::npos) << text;
  EXPECT_EQ(names_in(saved.dir.path()), (std::vector<std::string>{"checkpoint"})) << "the temporary must be removed";
  EXPECT_EQ(snapshot(saved.path), before);
  Model fresh(small_strided_config());
  load_checkpoint(saved.path, fresh, nullptr);
  EXPECT_TRUE(same_bits(fresh.weights(), saved.model.weights()));

  // An optimizer of the wrong size is refused before anything is written.
  OptimizerState wrong(5);
  expect_error([&] { save_checkpoint(saved.path, second, &wrong, saved.train, sample_state()); },
               {"optimizer state holds 5"});
  EXPECT_EQ(snapshot(saved.path), before);
}

TEST(Checkpoint, UnwritableTargetsAreRefusedNamingThePath) {
  TempDir dir("ckpt");
  Model model(small_strided_config());
  write_bytes(dir / "file", {'x'});
  expect_error([&] { save_checkpoint(dir / "file/checkpoint", model, nullptr, TrainConfig{}, TrainState{}); },
               {dir / "file/checkpoint"});
  expect_error([&] { save_checkpoint(dir / "file", model, nullptr, TrainConfig{}, TrainState{}); },
               {dir / "file", "not a directory"});
  EXPECT_EQ(read_bytes(dir / "file"), std::vector<char>{'x'});
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"file"}));
}

TEST(Checkpoint, InterruptedSwapIsRecoveredFromOld) {
  Saved saved;
  // A crash after the old checkpoint was moved aside and before the new one moved in.
  fs::rename(saved.path, saved.path + ".old");
  ::testing::internal::CaptureStderr();
  const CheckpointInfo info = read_checkpoint_info(saved.path);
  Model fresh(small_strided_config());
  OptimizerState loaded;
  load_checkpoint(saved.path, fresh, &loaded);
  const std::string note = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(note.find(saved.path + ".old"), std::string::npos) << note;
  EXPECT_EQ(info.state.step, 12);
  EXPECT_TRUE(same_bits(fresh.weights(), saved.model.weights()));
  EXPECT_TRUE(same_bits(loaded.exp_avg_sq, saved.optimizer.exp_avg_sq));
  EXPECT_EQ(names_in(saved.dir.path()), (std::vector<std::string>{"checkpoint.old"})) << "loading changes nothing";

  // The next save puts a checkpoint in place and only then drops the old one.
  Model second(small_strided_config());
  second.init(8);
  save_checkpoint(saved.path, second, &loaded, saved.train, sample_state());
  EXPECT_EQ(names_in(saved.dir.path()), (std::vector<std::string>{"checkpoint"}));
  load_checkpoint(saved.path, fresh, nullptr);
  EXPECT_TRUE(same_bits(fresh.weights(), second.weights()));

  // A crash after the second rename leaves a stale .old beside a complete checkpoint.
  fs::copy(saved.path, saved.path + ".old", fs::copy_options::recursive);
  Model third(small_strided_config());
  third.init(9);
  fs::remove_all(saved.path + ".old/state.json");
  load_checkpoint(saved.path, fresh, nullptr);
  EXPECT_TRUE(same_bits(fresh.weights(), second.weights()));
  save_checkpoint(saved.path, third, nullptr, saved.train, sample_state());
  EXPECT_EQ(names_in(saved.dir.path()), (std::vector<std::string>{"checkpoint"}));
}

TEST(ModelFile, RoundTripAndValidation) {
  TempDir dir("model");
  ModelConfig config = small_strided_config();
  config.half_qk = true;
  config.ff_ratio = 2.0;
  Model model(config);
  model.init(11);
  const std::string path = dir / "model.safetensors";
  save_model_file(path, model);
  EXPECT_EQ(to_json(read_model_config(path)), to_json(config));
  Model fresh(read_model_config(path));
  load_model_file(path, fresh);
  EXPECT_TRUE(same_bits(fresh.weights(), model.weights()));

  Model wider(small_strided_config());  // same names, full-width q/k: qkv shapes differ
  expect_error([&] { load_model_file(path, wider); },
               {path, "blocks.0.attn.qkv.weight", "F32 (32, 16)", "expected F32 (48, 16)"});
  ModelConfig deeper = config;
  deeper.layers = 3;
  Model three_layers(deeper);
  expect_error([&] { load_model_file(path, three_layers); }, {path, "blocks.2.ln1.weight", "missing"});

  SafetensorsWriter writer;
  float x = 0;
  writer.add_f32("x", {1}, &x);
  writer.write_file(dir / "plain.safetensors");
  expect_error([&] { read_model_config(dir / "plain.safetensors"); }, {"plain.safetensors", "not an spt model file"});
}

// The Python test reads spt's files with struct + json and checks them against the
// table of docs/MODEL.md; here it reads files this build writes, without `spt train`.
std::string repo_root() { return SPT_SOURCE_DIR; }

int run_python_check(const std::string& args) {
  const std::string script = repo_root() + "/tests/python/test_safetensors_names.py";
  const std::string command = "/usr/bin/python3 '" + script + "' --repo '" + repo_root() + "' " + args;
  return std::system(command.c_str());
}

TEST(Checkpoint, PythonStandardLibraryReadsTheFiles) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3 (Debian's python3 package)";
  TempDir dir("py");
  {
    Model model(find_preset("tiny").model);
    model.init(1);
    OptimizerState optimizer = random_optimizer(model, 2);
    save_checkpoint(dir / "checkpoint", model, &optimizer, TrainConfig{}, sample_state());
    EXPECT_EQ(run_python_check("--checkpoint '" + dir / "checkpoint" + "'"), 0);
  }
  {
    ModelConfig config = small_strided_config();
    config.half_qk = true;
    config.ff_ratio = 2.0;
    config.pos_sizes = {2, 4, 2};
    Model model(config);
    model.init(1);
    save_model_file(dir / "model.safetensors", model);
    EXPECT_EQ(run_python_check("--model-file '" + dir / "model.safetensors" + "'"), 0);
    // The check must be able to fail: drop the last tensor's final float.
    std::vector<char> bytes = read_bytes(dir / "model.safetensors");
    bytes.resize(bytes.size() - 4);
    write_bytes(dir / "model.safetensors", bytes);
    EXPECT_NE(run_python_check("--model-file '" + dir / "model.safetensors" + "' 2>/dev/null"), 0);
  }
}

}  // namespace
}  // namespace spt
