// Checkpoints: a directory holding model.safetensors (weights, DESIGN.md names, the
// model config in __metadata__), optimizer.safetensors (AdamW moments) and state.json
// (step, seed, data, configs, CRC-32 of both tensor files). It is written to a
// temporary sibling, fsynced and swapped into place, so the last good checkpoint
// survives any crash; a checkpoint whose files do not match their recorded sizes and
// checksums is refused.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace spt {

struct TrainState {
  int64_t step = 0;             // optimizer steps completed
  int64_t tokens_seen = 0;
  std::string data_format;      // as given to load_dataset
  std::string data_path;
  double last_valid_bits = -1;  // -1: not evaluated yet
  double loss_scale = 1;        // fp16 dynamic loss scale (1 in fp32/bf16)
  int64_t clean_steps = 0;      // finite steps since the loss scale last changed
};

// Writes dir + ".tmp-<pid>", fsyncs it, then swaps it in (dir -> dir + ".old", temporary
// -> dir, .old removed). On failure the temporary is removed, the previous checkpoint is
// untouched, and the error names dir. Without an optimizer the checkpoint holds weights
// only and cannot be resumed.
void save_checkpoint(const std::string& dir, const Model& model, const OptimizerState* optimizer,
                     const TrainConfig& train, const TrainState& state);

struct CheckpointInfo {
  ModelConfig model;
  TrainConfig train;
  TrainState state;
  bool has_optimizer = false;
};

// Both read dir, or dir + ".old" when dir is missing (a save interrupted between its two
// renames; a note goes to stderr). Neither modifies any file.
// Reads and verifies state.json, the config and the recorded file sizes; throws naming
// the file on any problem.
CheckpointInfo read_checkpoint_info(const std::string& dir);
// Verifies sizes and CRC-32 of every file before reading any tensor, then loads the
// weights (and the optimizer when given) into a model built from the same config. A
// different config, a damaged or missing file, or a missing optimizer is refused and
// leaves the model and optimizer as they were.
void load_checkpoint(const std::string& dir, Model& model, OptimizerState* optimizer);

// Weights alone (model.safetensors) for a model of the config in its metadata. Saving
// is atomic (temporary, fsync, rename); loading checks that the file holds exactly the
// model's tensors with their shapes as F32, not that the rest of the config agrees.
void save_model_file(const std::string& path, const Model& model);
ModelConfig read_model_config(const std::string& model_file);
void load_model_file(const std::string& path, Model& model);

}  // namespace spt
