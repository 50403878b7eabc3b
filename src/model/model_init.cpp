// Model construction: the parameter table (model/weights.cpp lists the tensors), the
// per-layer attention plans, and the paper's initialization.
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "model/model.h"

namespace spt {

Pattern model_pattern(const ModelConfig& c) { return Pattern(pattern_spec(c)); }

ParamTable model_param_table(const ModelConfig& config) {
  validate(config);
  ParamTable table;
  add_model_tensors(config, table);
  return table;
}

Model::Model(const ModelConfig& config) : config_(config) {
  validate(config_);
  weight_table_ = add_model_tensors(config_, table_);
  weights_.assign(table_.total(), 0.0f);
  grads_.assign(table_.total(), 0.0f);
  const Pattern pattern = model_pattern(config_);
  for (int r = 0; r < config_.layers; ++r) plans_.push_back(make_plan(pattern, r));
}

void Model::init(uint64_t seed) {
  const double C = config_.width, F = config_.ff_width(), L = config_.layers;
  const double tables = static_cast<double>(config_.pos_sizes.size());
  const double residual_scale = 1.0 / std::sqrt(2.0 * L);
  std::fill(weights_.begin(), weights_.end(), 0.0f);
  for (size_t index = 0; index < table_.all().size(); ++index) {
    const ParamInfo& p = table_.all()[index];
    const std::string& n = p.name;
    auto ends_with = [&](const std::string& suffix) {
      return n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    double std_dev = 0.0;
    if (n == "tok_emb.weight") std_dev = std::sqrt(0.125 / C);
    else if (n.rfind("pos_emb.", 0) == 0) std_dev = std::sqrt(0.125 / (C * tables));
    else if (ends_with("attn.qkv.weight") || ends_with("mlp.fc1.weight")) std_dev = std::sqrt(0.125 / C);
    else if (ends_with("attn.proj.weight")) std_dev = std::sqrt(0.125 / C) * residual_scale;
    else if (ends_with("mlp.fc2.weight")) std_dev = std::sqrt(0.125 / F) * residual_scale;
    float* data = weights_.data() + p.offset;
    if (ends_with("ln1.weight") || ends_with("ln2.weight") || n == "ln_f.weight") {
      std::fill(data, data + p.size, 1.0f);
      continue;
    }
    if (std_dev == 0.0) continue;  // biases and the output layer start at zero
    const uint64_t key = rng_key(seed, 0x696E6974ULL, index);
    for (int64_t e = 0; e < p.size; ++e) data[e] = static_cast<float>(std_dev * normal01(key, static_cast<uint64_t>(e)));
  }
}

void Model::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

}  // namespace spt
