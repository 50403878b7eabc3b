// Flags shared by the commands that build a model: --preset, --config and one long
// flag per ModelConfig / TrainConfig field. Precedence: preset < config file < flags,
// with the geometry rule of apply_geometry_rule (model/config.h) at every level.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "model/config.h"
#include "model/config_json.h"

namespace spt::cli {

struct ModelFlags {
  std::string preset;
  std::string config_file;
  ModelConfig model;   // values given on the command line
  TrainConfig train;
  std::string data_format;  // from the preset unless --data-format is given
  std::string data_path;
  std::string pos_sizes;    // "a,b,c"
  // Resolves preset, file and flags into model/train/data (the flags CLI11 saw win).
  void resolve(CLI::App* cmd, ModelConfig& model_out, TrainConfig& train_out, DataConfig& data_out) const;
  void resolve(CLI::App* cmd, ModelConfig& model_out, TrainConfig& train_out, std::string& format_out) const;

 private:
  void resolve_train(CLI::App* cmd, TrainConfig& train_out) const;
};

// Adds the model flags (and, with `train`, the training flags) to cmd.
void add_model_flags(CLI::App* cmd, ModelFlags& flags, bool train);

}  // namespace spt::cli
