// Checkpoints: a directory holding model.safetensors (weights, the names of docs/MODEL.md, the
// model config in __metadata__), optimizer.safetensors (AdamW moments), with --ema
// model_ema.safetensors (the weight average, in model.safetensors' format) and state.json
// (step, seed, data, configs, best validation, CRC-32 of the tensor files and of itself). It is written
// to a temporary sibling, fsynced and swapped into place, so the last good checkpoint
// survives any crash; a checkpoint whose files do not match their recorded sizes and
// checksums is refused. For inference (eval, sample) model.safetensors alone suffices:
// its config comes from its __metadata__, and a copy re-saved by other tools (other
// tensor order, extra metadata) is accepted when its tensors are valid.
#pragma once

#include <cstdint>
#include <limits>
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
  // The lowest validation bits so far (NaN: none yet), the step that gave them (whose
  // checkpoint is RUN/best) and the validation passes since then (--patience).
  double best_valid_bits = std::numeric_limits<double>::quiet_NaN();
  int64_t best_step = 0;
  int64_t passes_since_best = 0;
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
  bool has_ema = false;       // model_ema.safetensors is listed (the run averaged its weights)
  bool weights_only = false;  // no state.json: train and state are defaults, data unknown
};

// Both accept a checkpoint directory, dir + ".old" when dir is missing (a save
// interrupted between its two renames; a note goes to stderr), a run directory (its
// checkpoint/), or a model.safetensors file or a directory holding only one (weights
// only). Neither modifies any file. A read that fails while a trainer is saving into
// the checkpoint is retried, so a healthy checkpoint is never reported as damaged.
// Reads and verifies state.json, the config and the header of model.safetensors, whose
// tensors must hold as many parameters as the config describes (checked before anything
// of that size is allocated); throws naming the file on any problem.
CheckpointInfo read_checkpoint_info(const std::string& dir);
// Verifies before reading any tensor: with an optimizer (resume), sizes and CRC-32 of
// every file; without, the CRC-32 of model.safetensors when it is the file state.json
// describes (otherwise a note says that names, shapes, dtypes and finite values were
// checked instead). Then loads the weights (and the optimizer when given) into a model
// built from the same config; a non-finite value is refused naming the tensor. A
// different config, a damaged or missing file, or a missing optimizer is refused and
// leaves the model and optimizer as they were.
// With an optimizer whose run averages its weights (train.ema > 0), the average is loaded
// into optimizer->ema as well (a checkpoint lacking it is refused).
void load_checkpoint(const std::string& dir, Model& model, OptimizerState* optimizer);

// The weights eval and sample use: the average (model_ema.safetensors, verified like
// model.safetensors, which is checked as well) when `prefer_average` and the checkpoint
// has one, else what load_checkpoint loads. A .safetensors file named in `dir` is always
// used as it is.
struct LoadedWeights {
  bool average = false;  // the weight average was loaded
  std::string file;      // the file the weights came from
};
LoadedWeights load_weights(const std::string& dir, Model& model, bool prefer_average);

// Removes `checkpoint_dir`.tmp-<pid> siblings left by killed saves: those whose process
// is gone, or all but this process's own when the caller holds the run's lock. Files
// written by write_file_atomically leave temporaries of the same naming, so a file's
// path serves as well.
void remove_stale_checkpoint_temps(const std::string& checkpoint_dir, bool run_locked);

// True for a directory holding state.json or optimizer.safetensors.
bool is_checkpoint_directory(const std::string& dir);
// Throws (naming `flag` and the path) when writing `path` would overwrite a checkpoint:
// it lies in a checkpoint directory, or is an existing file named like a checkpoint file.
void refuse_checkpoint_overwrite(const std::string& path, const std::string& flag);

// Weights alone (model.safetensors) for a model of the config in its metadata. Saving
// is atomic (temporary, fsync, rename); loading checks that the file holds exactly the
// model's tensors with their shapes as finite F32, not that the rest of the config agrees.
void save_model_file(const std::string& path, const Model& model);
ModelConfig read_model_config(const std::string& model_file);
void load_model_file(const std::string& path, Model& model);

}  // namespace spt
