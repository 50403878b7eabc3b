#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config_json.h"

namespace spt {

void share_run_setup(dist::Communicator& comm, ModelConfig& model, TrainConfig& train, TrainState& state) {
  if (comm.world() == 1) return;
  std::string text;
  if (comm.rank() == 0)
    text = nlohmann::json{{"model", to_json(model)},
                          {"train", to_json(train)},
                          {"step", state.step},
                          {"tokens_seen", state.tokens_seen},
                          {"data_format", state.data_format},
                          {"data_path", state.data_path},
                          {"last_valid_bits", state.last_valid_bits},
                          {"loss_scale", state.loss_scale},
                          {"clean_steps", state.clean_steps},
                          {"best_valid_bits", std::isfinite(state.best_valid_bits) ? nlohmann::json(state.best_valid_bits)
                                                                                   : nlohmann::json(nullptr)},
                          {"best_step", state.best_step},
                          {"passes_since_best", state.passes_since_best}}
               .dump();
  dist::broadcast_string(comm, text, 0);
  if (comm.rank() == 0) return;
  const nlohmann::json json = nlohmann::json::parse(text);
  model = ModelConfig{};
  update_from_json(model, json.at("model"), "rank 0's model config");
  update_from_json(train, json.at("train"), "rank 0's training config");
  state.step = json.at("step").get<int64_t>();
  state.tokens_seen = json.at("tokens_seen").get<int64_t>();
  state.data_format = json.at("data_format").get<std::string>();
  state.data_path = json.at("data_path").get<std::string>();
  state.last_valid_bits = json.at("last_valid_bits").get<double>();
  state.loss_scale = json.at("loss_scale").get<double>();
  state.clean_steps = json.at("clean_steps").get<int64_t>();
  const nlohmann::json& best = json.at("best_valid_bits");
  state.best_valid_bits = best.is_null() ? std::numeric_limits<double>::quiet_NaN() : best.get<double>();
  state.best_step = json.at("best_step").get<int64_t>();
  state.passes_since_best = json.at("passes_since_best").get<int64_t>();
}

void share_weights(dist::Communicator& comm, Model& model, OptimizerState& optimizer) {
  if (comm.world() == 1) return;
  const int64_t n = model.params().total();
  const bool root = comm.rank() == 0;
  SPT_CHECK(!root || (optimizer.moments_begin == 0 && static_cast<int64_t>(optimizer.exp_avg.size()) == n &&
                      static_cast<int64_t>(optimizer.exp_avg_sq.size()) == n),
            "rank 0's optimizer state holds ", optimizer.exp_avg.size(), " floats from parameter ",
            optimizer.moments_begin, " for a model of ", n, ": it hands out whole moments");
  // The weight average (--ema) is as long as the weights or empty on every rank alike: the
  // training config that decides it was shared first.
  SPT_CHECK(optimizer.ema.empty() || static_cast<int64_t>(optimizer.ema.size()) == n,
            "weight average of ", optimizer.ema.size(), " floats for a model of ", n);
  for (std::vector<float>* values : {&model.weights(), &optimizer.ema})
    if (!values->empty()) comm.broadcast_host(values->data(), n * static_cast<int64_t>(sizeof(float)), 0);
  comm.broadcast_host(&optimizer.step, sizeof optimizer.step, 0);
  const dist::ShardRange shard = dist::shard_range(n, comm.world(), comm.rank());
  OptimizerState mine(shard.size(), shard.begin);  // (shard) each moment
  dist::scatter_shards_host(comm, root ? optimizer.exp_avg.data() : nullptr, mine.exp_avg.data(), n, 0);
  dist::scatter_shards_host(comm, root ? optimizer.exp_avg_sq.data() : nullptr, mine.exp_avg_sq.data(), n, 0);
  optimizer.exp_avg = std::move(mine.exp_avg);
  optimizer.exp_avg_sq = std::move(mine.exp_avg_sq);
  optimizer.moments_begin = shard.begin;
}

void save_gathered_checkpoint(dist::Communicator& comm, const std::string& dir, const Model& model,
                              OptimizerState& optimizer, const TrainConfig& train, const TrainState& state) {
  if (comm.world() == 1) return save_checkpoint(dir, model, &optimizer, train, state);
  const int64_t n = model.params().total();
  const bool root = comm.rank() == 0;
  const dist::ShardRange shard = dist::shard_range(n, comm.world(), comm.rank());
  SPT_CHECK(optimizer.moments_begin == shard.begin && optimizer.moments_end() == shard.end,
            "rank ", comm.rank(), " holds the moments of parameters [", optimizer.moments_begin, ", ",
            optimizer.moments_end(), ") but its shard is [", shard.begin, ", ", shard.end,
            "): hand the state out with share_weights first");
  OptimizerState whole(root ? n : 0);  // (n) each moment on rank 0, empty elsewhere
  dist::gather_shards_host(comm, optimizer.exp_avg.data(), root ? whole.exp_avg.data() : nullptr, n, 0);
  dist::gather_shards_host(comm, optimizer.exp_avg_sq.data(), root ? whole.exp_avg_sq.data() : nullptr, n, 0);
  if (!root) return;
  whole.step = optimizer.step;
  // The weight average is lent for the save, not copied: n floats fewer at the peak.
  whole.ema.swap(optimizer.ema);
  try {
    save_checkpoint(dir, model, &whole, train, state);
  } catch (...) {
    whole.ema.swap(optimizer.ema);
    throw;
  }
  whole.ema.swap(optimizer.ema);
}

void rank_batch(const TokenSplit& split, int64_t T, int B, uint64_t seed, int64_t draw, const dist::Communicator& comm,
                uint8_t* tokens, std::vector<uint8_t>& scratch) {
  if (comm.world() == 1) return training_batch(split, T, B, seed, draw, tokens);
  const int64_t global = int64_t{B} * comm.world();
  SPT_CHECK(global <= (int64_t{1} << 30), "a global batch of ", comm.world(), " ranks x ", B,
            " windows is too large: lower --batch");
  scratch.resize(static_cast<size_t>(global * T));  // (world * B, T)
  training_batch(split, T, static_cast<int>(global), seed, draw, scratch.data());
  const uint8_t* mine = scratch.data() + static_cast<int64_t>(comm.rank()) * B * T;
  std::copy(mine, mine + int64_t{B} * T, tokens);
}

void any_rank(dist::Communicator& comm, std::initializer_list<bool*> flags) {
  if (comm.world() == 1) return;
  std::vector<double> votes;
  for (const bool* flag : flags) votes.push_back(*flag ? 1.0 : 0.0);
  comm.all_reduce_sum_host(votes.data(), static_cast<int64_t>(votes.size()));
  size_t i = 0;
  for (bool* flag : flags) *flag = votes[i++] > 0;
}

}  // namespace spt
