// Named configurations: the paper's four setups and small CPU setups on the data
// sets a fresh Debian machine can install (docs/DATA.md, docs/RESULTS.md).
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace spt {

struct Preset {
  std::string name;
  std::string summary;
  std::string data_format;  // "bytes" | "idx" | "cifar10": what load_dataset expects
  ModelConfig model;
  TrainConfig train;
  std::string why = {};  // how the sizes were chosen (GPU presets: the throughput they assume)
};

const std::vector<Preset>& presets();
const Preset& find_preset(const std::string& name);  // Error listing the names when unknown

}  // namespace spt
