// ModelConfig and TrainConfig as JSON: the --config file, the resolved config printed
// at start, and the config stored in every checkpoint. Keys are the field names.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace spt {

nlohmann::json to_json(const ModelConfig& config);
nlohmann::json to_json(const TrainConfig& config);
// Overwrites the fields present in `json`; an unknown key is an error naming it.
void update_from_json(ModelConfig& config, const nlohmann::json& json, const std::string& where);
void update_from_json(TrainConfig& config, const nlohmann::json& json, const std::string& where);
// Reads {"model": {...}, "train": {...}} (either part optional) from a file.
void load_config_file(const std::string& path, ModelConfig& model, TrainConfig& train);

}  // namespace spt
