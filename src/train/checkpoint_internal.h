// Shared by the checkpoint sources (checkpoint.cpp: save and load, checkpoint_state.cpp:
// state.json, checkpoint_locate.cpp: finding a checkpoint and waiting out a save).
// Not part of the public interface: include train/checkpoint.h instead.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "train/checkpoint.h"

namespace spt::checkpoint_detail {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";
// The weight average (--ema): model.safetensors' names, shapes and metadata, other values.
inline constexpr const char* kEmaFile = "model_ema.safetensors";
inline constexpr const char* kStateFile = "state.json";
inline constexpr const char* kDamagedHint =
    "the checkpoint is damaged: restore it from a copy or start the run afresh";

std::string strip_trailing_slashes(std::string path);

// Prints "spt: note: <text>" to stderr, once per process for the same text (a checkpoint
// is read twice by eval and sample: its config, then its tensors). Inside a HeldNotes
// scope the note waits for the scope's end.
void note_once(const std::string& text);

// Holds the notes of a read until it ends: printed when it succeeds, dropped when it
// throws, so that a refusal is one error line alone (the error names the file the notes
// would have) and a retried read does not print them twice.
class HeldNotes {
 public:
  HeldNotes();
  ~HeldNotes();
  HeldNotes(const HeldNotes&) = delete;
  HeldNotes& operator=(const HeldNotes&) = delete;

 private:
  int exceptions_;
};

struct FileRecord {
  int64_t bytes = 0;
  uint32_t crc32 = 0;
};
using FileRecords = std::vector<std::pair<std::string, FileRecord>>;

// state.json's text, with its own CRC-32 ("state_crc32") over the other fields.
std::string state_json_text(const ModelConfig& model, const TrainConfig& train, const TrainState& state,
                            const FileRecords& files);

struct StateFile {
  CheckpointInfo info;
  FileRecords files;
};
// Reads and verifies `path` (a state.json): its checksum, every field's presence, type
// and range. Throws one line naming the file and the field.
StateFile read_state_file(const std::string& path);

// Where a --checkpoint argument points.
struct Located {
  std::string dir;         // the checkpoint directory (or the directory of a lone model file)
  std::string model_file;  // dir/model.safetensors, or the file given
  bool has_state = false;  // dir/state.json describes model_file
  bool named_file = false; // the request named a .safetensors file (used as is, never swapped for the average)
};
Located locate_checkpoint(const std::string& requested);

// True while a trainer may be swapping the checkpoint `requested` points into: a
// temporary sibling of a running process exists (`swapping`), or another process holds
// the run directory's lock.
bool save_in_progress(const std::string& requested, bool& swapping);

// Runs `read` and, when it fails while a save is in progress, retries it after a short
// sleep (a reader may have seen files of two different saves), so a healthy checkpoint
// is never reported as damaged.
template <typename Read>
auto read_during_saves(const std::string& requested, Read read) -> decltype(read());
void wait_before_retry(const std::string& requested, int attempt, const Error& error);

template <typename Read>
auto read_during_saves(const std::string& requested, Read read) -> decltype(read()) {
  for (int attempt = 0;; ++attempt) {
    try {
      const HeldNotes notes;
      return read();
    } catch (const Error& e) {
      wait_before_retry(requested, attempt, e);  // rethrows e when retrying cannot help
    }
  }
}

}  // namespace spt::checkpoint_detail
