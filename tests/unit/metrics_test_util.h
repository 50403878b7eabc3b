// Reading a run's metrics.jsonl in tests that compare training runs.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spt::testing_support {

// The "loss" of every step row of run/metrics.jsonl, in order.
inline std::vector<double> losses_of(const std::string& run) {
  std::vector<double> losses;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json row = nlohmann::json::parse(line);
    if (row.contains("loss")) losses.push_back(row["loss"].get<double>());
  }
  return losses;
}

}  // namespace spt::testing_support
