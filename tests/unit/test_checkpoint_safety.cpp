// Checkpoints against hostile or unusual inputs: edited state.json fields, forged sizes,
// NaN weights, deep JSON, FIFOs, weights used without the rest of the checkpoint (and
// re-saved by other tools), stale temporaries, the run lock, readers during saves, and
// write errors that must not pass silently.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "io/file_util.h"
#include "io/json_limits.h"
#include "io/safetensors.h"
#include "model/config_json.h"
#include "train/checkpoint.h"
#include "train/run_lock.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::error_of;
using testing_support::read_bytes;
using testing_support::TempDir;
using testing_support::write_bytes;

#define EXPECT_ERROR_HAS(fn, piece)                                                  \
  do {                                                                               \
    const std::string text_ = error_of(fn);                                          \
    EXPECT_NE(text_.find(piece), std::string::npos) << "'" << piece << "' not in: " << text_; \
    EXPECT_EQ(text_.find('\n'), std::string::npos) << text_;                         \
  } while (0)

ModelConfig small_config() {
  ModelConfig c;
  c.layers = 2;
  c.width = 16;
  c.heads = 2;
  c.ctx = 16;
  c.stride = 4;
  c.pos_sizes = {4, 4};
  return c;
}

std::string text_of(const std::string& path) {
  const std::vector<char> bytes = read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<char>(text.begin(), text.end()));
}

// Replaces the first match of `pattern` in a file.
void edit(const std::string& path, const std::string& pattern, const std::string& replacement) {
  const std::string text = text_of(path);
  const std::string edited = std::regex_replace(text, std::regex(pattern), replacement,
                                                std::regex_constants::format_first_only);
  ASSERT_NE(edited, text) << "pattern " << pattern << " not found";
  write_text(path, edited);
}

struct Saved {
  TempDir dir{"safety"};
  Model model{small_config()};
  OptimizerState optimizer{model.params().total()};
  std::string path = dir / "run/checkpoint";
  std::string state = path + "/state.json";
  Saved() {
    model.init(7);
    TrainState s;
    s.step = 5;
    s.data_format = "bytes";
    s.data_path = "/data/x.txt";
    save_checkpoint(path, model, &optimizer, TrainConfig{}, s);
  }
};

TEST(CheckpointSafety, EditedStateJsonIsRefusedNamingTheField) {
  Saved saved;
  edit(saved.state, R"("accumulate": 1)", R"("accumulate": 3)");
  EXPECT_ERROR_HAS([&] { read_checkpoint_info(saved.path); }, "state_crc32");

  // Without the checksum (an older checkpoint, or one a tool rewrote), type checks remain.
  const std::vector<std::pair<std::string, std::string>> edits = {
      {R"(\s*"lr": [^,]*,)", ""}, {R"("warmup": \d+)", R"("warmup": 1.5)"}, {R"("layers": 2)", R"("layers": "2")"},
      {R"("step": 5)", R"("step": -1)"}, {R"("batch": \d+)", R"("batch": 4294967297)"}};
  const std::vector<std::string> fields = {"'lr' is missing", "'warmup'", "'layers'", "'step'", "'batch'"};
  for (size_t i = 0; i < edits.size(); ++i) {
    Saved fresh;
    edit(fresh.state, R"(,\s*"state_crc32": \d+)", "");
    edit(fresh.state, edits[i].first, edits[i].second);
    EXPECT_ERROR_HAS([&] { read_checkpoint_info(fresh.path); }, fields[i]);
  }
  Saved compat;
  edit(compat.state, R"(,\s*"state_crc32": \d+)", "");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(read_checkpoint_info(compat.path).state.step, 5);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("no state_crc32"), std::string::npos);
}

TEST(CheckpointSafety, ForgedSizesAreRefusedBeforeAllocation) {
  Saved saved;
  edit(saved.state, R"(,\s*"state_crc32": \d+)", "");
  edit(saved.state, R"("layers": 2)", R"("layers": 40000)");
  // 40000 layers of this width would be ~130 MB; the check compares counts first.
  EXPECT_ERROR_HAS([&] { read_checkpoint_info(saved.path); }, "model_config differs");

  // A lone model file whose metadata was edited: its tensors hold far fewer parameters.
  TempDir dir("forged");
  const std::string file = dir / "model.safetensors";
  fs::copy_file(saved.dir / "run/checkpoint/model.safetensors", file);
  std::string text = text_of(file);
  const size_t at = text.find("\\\"layers\\\":2");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 12, "\\\"layers\\\":9");  // same length: the header stays valid
  write_text(file, text);
  EXPECT_ERROR_HAS([&] { read_checkpoint_info(file); }, "parameters but its tensors hold");
}

TEST(CheckpointSafety, NonFiniteWeightsAreRefusedNamingTheTensor) {
  TempDir dir("nan");
  Model model(small_config());
  model.init(3);
  model.weights()[model.params().find("blocks.1.ln2.weight").offset + 2] = INFINITY;
  save_model_file(dir / "model.safetensors", model);
  Model fresh(small_config());
  EXPECT_ERROR_HAS([&] { load_checkpoint(dir / "model.safetensors", fresh, nullptr); }, "'blocks.1.ln2.weight' holds inf");
}

TEST(CheckpointSafety, ImpossibleOptimizerStateIsRefused) {
  // Saved as a tool forging the files would write them: every checksum matches.
  Saved saved;
  TrainState state;
  state.step = 5;
  saved.optimizer.step = 6;  // Adam took more steps than the run
  save_checkpoint(saved.path, saved.model, &saved.optimizer, TrainConfig{}, state);
  Model fresh(small_config());
  OptimizerState loaded(fresh.params().total());
  EXPECT_ERROR_HAS([&] { load_checkpoint(saved.path, fresh, &loaded); }, "__metadata__ step 6 exceeds the 5");
  saved.optimizer.step = 5;
  saved.optimizer.exp_avg_sq[3] = -1;  // a second moment is a mean of squares
  save_checkpoint(saved.path, saved.model, &saved.optimizer, TrainConfig{}, state);
  EXPECT_ERROR_HAS([&] { load_checkpoint(saved.path, fresh, &loaded); }, "a second moment is never negative");
}

TEST(CheckpointSafety, DeepJsonIsAnErrorNotACrash) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_ERROR_HAS([&] { parse_json_limited(deep, "x.json"); }, "x.json: JSON nested deeper than");
  EXPECT_EQ(parse_json_limited("[[1]]", "x").dump(), "[[1]]");
  EXPECT_ERROR_HAS([&] { parse_json_limited("{", "x.json"); }, "x.json: not valid JSON");

  Saved saved;
  edit(saved.state, R"("step": 5)", "\"step\": " + deep);
  EXPECT_ERROR_HAS([&] { read_checkpoint_info(saved.path); }, "nested deeper");

  TempDir dir("deep");
  const std::string header = "{\"x\": {\"dtype\": \"F32\", \"shape\": " + deep + ", \"data_offsets\": [0, 0]}}";
  std::vector<char> bytes(8, 0);
  uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes.insert(bytes.end(), header.begin(), header.end());
  write_bytes(dir / "m.safetensors", bytes);
  EXPECT_ERROR_HAS([&] { SafetensorsReader reader(dir / "m.safetensors"); }, "nested deeper");
}

TEST(CheckpointSafety, NonRegularFilesAreRefusedWithoutBlocking) {
  for (const char* name : {"state.json", "model.safetensors", "optimizer.safetensors"}) {
    Saved saved;
    const std::string path = saved.path + "/" + name;
    fs::remove(path);
    ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
    Model fresh(small_config());
    OptimizerState optimizer;
    EXPECT_ERROR_HAS([&] { load_checkpoint(saved.path, fresh, &optimizer); }, "it is a FIFO");
  }
  Saved saved;
  fs::remove(saved.state);
  fs::create_directory(saved.state);
  EXPECT_ERROR_HAS([&] { read_checkpoint_info(saved.path); }, "cannot read '" + saved.state + "': it is a directory");
}

// The tensors of `model` in reverse order with other metadata, as another tool re-saving
// the weights might write them.
void resave_reordered(const Model& model, const std::string& path) {
  SafetensorsWriter writer;
  const auto& params = model.params().all();
  for (auto p = params.rbegin(); p != params.rend(); ++p) writer.add_f32(p->name, p->shape, model.weights().data() + p->offset);
  writer.set_metadata("format", "pt");
  writer.set_metadata("model_config", to_json(model.config()).dump());
  writer.set_metadata("saved_by", "another tool");
  writer.write_file(path);
}

TEST(CheckpointSafety, WeightsAloneAndResavedWeightsLoad) {
  Saved saved;
  TempDir dir("weights");
  fs::create_directory(dir / "share");
  fs::copy_file(saved.path + "/model.safetensors", dir / "share/model.safetensors");
  ::testing::internal::CaptureStderr();
  for (const std::string& where : {dir / "share", dir / "share/model.safetensors"}) {
    const CheckpointInfo info = read_checkpoint_info(where);
    EXPECT_TRUE(info.weights_only);
    EXPECT_TRUE(info.state.data_path.empty());
    Model fresh(info.model);
    load_checkpoint(where, fresh, nullptr);
    EXPECT_EQ(fresh.weights(), saved.model.weights());
    OptimizerState optimizer;
    EXPECT_ERROR_HAS([&] { load_checkpoint(where, fresh, &optimizer); }, "cannot be resumed");
  }
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("no checksum"), std::string::npos);

  // Re-saved into the checkpoint (another size than recorded): checked by content.
  resave_reordered(saved.model, saved.path + "/model.safetensors");
  fs::remove(saved.path + "/optimizer.safetensors");  // inference does not need it
  Model fresh(small_config());
  ::testing::internal::CaptureStderr();
  load_checkpoint(saved.path, fresh, nullptr);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("instead of its checksum"), std::string::npos);
  EXPECT_EQ(fresh.weights(), saved.model.weights());
  OptimizerState optimizer;
  EXPECT_ERROR_HAS([&] { load_checkpoint(saved.path, fresh, &optimizer); }, "bytes but state.json records");

  // The file state.json describes (same size) with one flipped bit is still refused.
  Saved other;
  std::vector<char> bytes = read_bytes(other.path + "/model.safetensors");
  bytes[bytes.size() - 3] ^= 0x10;
  write_bytes(other.path + "/model.safetensors", bytes);
  EXPECT_ERROR_HAS([&] { load_checkpoint(other.path, fresh, nullptr); }, "CRC-32");
}

TEST(CheckpointSafety, RunDirectoryAndMissingPathsAreNamed) {
  Saved saved;
  EXPECT_EQ(read_checkpoint_info(saved.dir / "run").state.step, 5);
  TempDir empty("empty");
  const std::string text = error_of([&] { read_checkpoint_info(empty.path()); });
  EXPECT_NE(text.find("looked for"), std::string::npos) << text;
  EXPECT_NE(text.find("state.json"), std::string::npos) << text;
  EXPECT_EQ(text.find("damaged"), std::string::npos) << text;
  fs::remove(saved.path + "/model.safetensors");
  const std::string missing = error_of([&] { read_checkpoint_info(saved.path); });
  EXPECT_NE(missing.find("model.safetensors' is missing"), std::string::npos) << missing;
  EXPECT_EQ(missing.find("damaged"), std::string::npos) << missing;
}

TEST(CheckpointSafety, StaleTemporariesAreRemoved) {
  Saved saved;
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);  // its pid is now (almost surely) free
  const std::string dead = saved.path + ".tmp-" + std::to_string(child);
  const std::string live = saved.path + ".tmp-" + std::to_string(getppid());
  fs::create_directories(dead);
  fs::create_directories(live);
  save_checkpoint(saved.path, saved.model, &saved.optimizer, TrainConfig{}, TrainState{});
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live)) << "a live process may be saving";
  remove_stale_checkpoint_temps(saved.path, true);
  EXPECT_FALSE(fs::exists(live)) << "with the run lock held no one else saves here";
}

TEST(CheckpointSafety, OutputsRefuseToOverwriteCheckpoints) {
  Saved saved;
  EXPECT_ERROR_HAS([&] { refuse_checkpoint_overwrite(saved.path + "/model.safetensors", "--out"); }, "--out");
  EXPECT_ERROR_HAS([&] { refuse_checkpoint_overwrite(saved.path + "/samples.txt", "--out"); }, "checkpoint");
  EXPECT_ERROR_HAS([&] { refuse_checkpoint_overwrite(saved.path, "--out"); }, "is a checkpoint directory");
  refuse_checkpoint_overwrite(saved.dir / "samples.txt", "--out");
  refuse_checkpoint_overwrite(saved.dir / "fresh", "--out");
}

// A process holding the run lock of `dir` until the object is destroyed: a trainer.
class OtherLockHolder {
 public:
  explicit OtherLockHolder(const std::string& dir) {
    int ready[2], release[2];
    if (pipe(ready) != 0 || pipe(release) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      close(ready[0]);
      close(release[1]);
      try {
        const RunDirectory lock(dir);
        char byte = 'x';
        if (write(ready[1], &byte, 1) != 1 || read(release[0], &byte, 1) < 0) _exit(1);
      } catch (...) {
        _exit(1);
      }
      _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    release_ = release[1];
    char byte = 0;
    if (read(ready[0], &byte, 1) != 1) throw std::runtime_error("the lock holder failed");
    close(ready[0]);
  }
  ~OtherLockHolder() {
    close(release_);
    waitpid(pid_, nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
};

TEST(CheckpointSafety, RunLockRefusesASecondOwner) {
  TempDir dir("lock");
  {
    const RunDirectory first(dir / "run");
    EXPECT_FALSE(run_lock_held(dir / "run")) << "this process's own lock is no other trainer";
    EXPECT_ERROR_HAS([&] { RunDirectory second(dir / "run"); }, "(pid " + std::to_string(getpid()) + ")");
  }
  EXPECT_FALSE(run_lock_held(dir / "run"));
  const OtherLockHolder other(dir / "run");
  EXPECT_TRUE(run_lock_held(dir / "run"));
}

TEST(CheckpointSafety, DamagedOldCheckpointIsRefusedAtOnce) {
  // A save killed between its two renames leaves only checkpoint.old: no writer is left
  // to wait for, even where this process holds the run lock itself (train --resume).
  Saved saved;
  const RunDirectory own(saved.dir / "run");
  std::vector<char> model = read_bytes(saved.path + "/model.safetensors");
  model[4] ^= 4;
  write_bytes(saved.path + "/model.safetensors", model);
  fs::rename(saved.path, saved.path + ".old");
  Model fresh(small_config());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(error_of([&] { load_checkpoint(saved.path, fresh, nullptr); }).find("checkpoint.old"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200)) << "no retries";
}

TEST(CheckpointSafety, FailedRunRemovesOnlyWhatItCreated) {
  TempDir dir("created");
  try {
    RunDirectory run(dir / "a/b/run");
    write_text(dir / "a/b/run/config.json", "{}");
    throw Error("bad data");
  } catch (const Error&) {
  }
  EXPECT_FALSE(fs::exists(dir / "a")) << "every directory the run created is gone";
  EXPECT_TRUE(fs::exists(dir.path()));
  fs::create_directories(dir / "kept");
  try {
    RunDirectory run(dir / "kept");
    throw Error("bad data");
  } catch (const Error&) {
  }
  EXPECT_TRUE(fs::exists(dir / "kept")) << "a directory that existed stays";
}

TEST(CheckpointSafety, ReadersDuringSavesNeverSeeDamage) {
  Saved saved;
  const OtherLockHolder trainer(saved.dir / "run");  // the lock a trainer holds
  std::atomic<bool> done{false};
  std::thread writer([&] {
    Model other(small_config());
    for (int i = 0; i < 150; ++i) {
      other.init(i);
      save_checkpoint(saved.path, i % 2 ? other : saved.model, &saved.optimizer, TrainConfig{}, TrainState{});
    }
    done = true;
  });
  int reads = 0;
  std::string failure;
  while (!done && failure.empty()) {
    Model fresh(small_config());
    failure = error_of([&] { load_checkpoint(saved.path, fresh, nullptr); });
    ++reads;
  }
  writer.join();
  EXPECT_TRUE(failure.empty()) << "after " << reads << " reads: " << failure;
}

TEST(CheckpointSafety, AppendFileReportsAFullDisk) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  AppendFile out("/dev/full");
  EXPECT_ERROR_HAS([&] { out.write("{\"step\": 1}\n"); }, "cannot write '/dev/full': No space left on device");
}

}  // namespace
}  // namespace spt
