// ModelConfig and TrainConfig as JSON: the --config file, the resolved config printed
// at start, and the config stored in every checkpoint. Keys are the field names.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace spt {

nlohmann::json to_json(const ModelConfig& config);
nlohmann::json to_json(const TrainConfig& config);
// Overwrites the fields present in `json`; an unknown key is an error naming it. For the
// model, a "ctx" or "stride" without "pos_sizes" re-derives text position tables, as the
// --ctx and --stride flags do (see apply_geometry_rule in config.h).
void update_from_json(ModelConfig& config, const nlohmann::json& json, const std::string& where);
void update_from_json(TrainConfig& config, const nlohmann::json& json, const std::string& where);

// The "data" section of a config file: what `spt train` records in a run's config.json.
struct DataConfig {
  std::string format;  // empty: not given
  std::string path;
};

// Reads {"model": {...}, "train": {...}, "data": {...}} (each part optional) from a file
// and applies its fields, so a run's own config.json is a valid --config for a new run.
// The data section's token counts are informational and ignored; any other unknown key
// is an error.
void load_config_file(const std::string& path, ModelConfig& model, TrainConfig& train, DataConfig& data);

}  // namespace spt
