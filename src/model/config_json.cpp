#include "model/config_json.h"

#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "io/input_file.h"
#include "io/json_limits.h"

namespace spt {
namespace {

// A value for an error message, cut short: a config value can be arbitrarily long.
std::string excerpt(const nlohmann::json& json) { return json_excerpt(json, 80); }

// nlohmann converts between every number type and bool without a word (4294967298 read as
// an int is 2, true is 1, 2.5 is 2, -1 as a uint64 is 2^64-1), so each field type has a
// strict reader: the JSON type must match and an integer must fit the field.
struct Field {
  const nlohmann::json& value;
  const char* key;
  const std::string& where;

  [[noreturn]] void wrong(const char* expected) const {
    throw Error(message(where, ": '", key, "' must be ", expected, ", got ", excerpt(value)));
  }
  int64_t integer(int64_t lo, int64_t hi, const char* expected) const {
    return json_integer(value, key, lo, hi, where, expected);
  }
};

constexpr int64_t kIntMax = 2147483647;

void read(const Field& f, int& out) { out = static_cast<int>(f.integer(-kIntMax - 1, kIntMax, "an integer of 32 bits")); }
void read(const Field& f, int64_t& out) { out = f.integer(INT64_MIN, INT64_MAX, "an integer of 64 bits"); }
void read(const Field& f, uint64_t& out) {
  if (!f.value.is_number_unsigned()) f.wrong("a non-negative integer below 2^64");
  out = f.value.get<uint64_t>();
}
void read(const Field& f, double& out) {
  // A number too large for a double (1e400) parses as infinity.
  if (!f.value.is_number() || !std::isfinite(f.value.get<double>())) f.wrong("a finite number");
  out = f.value.get<double>();
}
void read(const Field& f, bool& out) {
  if (!f.value.is_boolean()) f.wrong("true or false");
  out = f.value.get<bool>();
}
void read(const Field& f, std::string& out) {
  if (!f.value.is_string()) f.wrong("a string");
  out = f.value.get<std::string>();
}
void read(const Field& f, std::vector<int>& out) {
  const char* expected = "a list of integers of 32 bits";
  if (!f.value.is_array()) f.wrong(expected);
  std::vector<int> values;
  for (const nlohmann::json& item : f.value)
    values.push_back(static_cast<int>(Field{item, f.key, f.where}.integer(-kIntMax - 1, kIntMax, expected)));
  out = std::move(values);
}

template <typename Value>
void take(const nlohmann::json& json, const char* key, Value& value, const std::string& where) {
  if (json.contains(key)) read(Field{json.at(key), key, where}, value);
}

void reject_unknown(const nlohmann::json& json, std::initializer_list<const char*> known, const std::string& where) {
  SPT_CHECK(json.is_object(), where, ": expected a JSON object, got ", excerpt(json));
  for (const auto& item : json.items()) {
    bool found = false;
    for (const char* key : known) found = found || item.key() == key;
    SPT_CHECK(found, where, ": unknown key '", item.key(), "'");
  }
}

}  // namespace

nlohmann::json to_json(const ModelConfig& c) {
  nlohmann::json json = {{"layers", c.layers}, {"width", c.width}, {"heads", c.heads}, {"ctx", c.ctx},
                         {"ff_ratio", c.ff_ratio}, {"half_qk", c.half_qk}, {"pattern", c.pattern},
                         {"stride", c.stride}, {"summary", c.summary}, {"summary_blocks", c.summary_blocks},
                         {"mode", c.mode}, {"dropout", c.dropout}, {"pos_sizes", c.pos_sizes}};
  // Written for audio models only, so that every checkpoint saved before the field
  // existed (which must hold each written key) still loads, and text/image configs
  // read as before.
  if (c.sample_rate != 0) json["sample_rate"] = c.sample_rate;
  return json;
}

nlohmann::json to_json(const TrainConfig& c) {
  nlohmann::json json = {{"batch", c.batch}, {"accumulate", c.accumulate}, {"steps", c.steps}, {"lr", c.lr},
                         {"warmup", c.warmup}, {"weight_decay", c.weight_decay}, {"beta1", c.beta1},
                         {"beta2", c.beta2}, {"eps", c.eps}, {"clip", c.clip}, {"seed", c.seed},
                         {"eval_every", c.eval_every}, {"eval_batches", c.eval_batches},
                         {"save_every", c.save_every}, {"recompute", c.recompute}};
  // Written only when not the default, as sample_rate: checkpoints saved before these
  // fields existed (which must hold every written key) still load.
  if (c.ema != 0) json["ema"] = c.ema;
  if (c.patience != 0) json["patience"] = c.patience;
  if (c.bucket_mib != TrainConfig{}.bucket_mib) json["bucket_mib"] = c.bucket_mib;
  return json;
}

void update_from_json(ModelConfig& c, const nlohmann::json& j, const std::string& where) {
  reject_unknown(j, {"layers", "width", "heads", "ctx", "ff_ratio", "half_qk", "pattern", "stride", "summary",
                     "summary_blocks", "mode", "dropout", "pos_sizes", "sample_rate"}, where);
  take(j, "layers", c.layers, where);
  take(j, "width", c.width, where);
  take(j, "heads", c.heads, where);
  take(j, "ctx", c.ctx, where);
  take(j, "ff_ratio", c.ff_ratio, where);
  take(j, "half_qk", c.half_qk, where);
  take(j, "pattern", c.pattern, where);
  take(j, "stride", c.stride, where);
  take(j, "summary", c.summary, where);
  take(j, "summary_blocks", c.summary_blocks, where);
  take(j, "mode", c.mode, where);
  take(j, "dropout", c.dropout, where);
  take(j, "pos_sizes", c.pos_sizes, where);
  take(j, "sample_rate", c.sample_rate, where);
  apply_geometry_rule(c, j.contains("ctx") || j.contains("stride"), j.contains("pos_sizes"));
}

void update_from_json(TrainConfig& c, const nlohmann::json& j, const std::string& where) {
  reject_unknown(j, {"batch", "accumulate", "steps", "lr", "warmup", "weight_decay", "beta1", "beta2", "eps", "clip",
                     "seed", "eval_every", "eval_batches", "save_every", "recompute", "ema", "patience",
                     "bucket_mib"}, where);
  take(j, "batch", c.batch, where);
  take(j, "accumulate", c.accumulate, where);
  take(j, "steps", c.steps, where);
  take(j, "lr", c.lr, where);
  take(j, "warmup", c.warmup, where);
  take(j, "weight_decay", c.weight_decay, where);
  take(j, "beta1", c.beta1, where);
  take(j, "beta2", c.beta2, where);
  take(j, "eps", c.eps, where);
  take(j, "clip", c.clip, where);
  take(j, "seed", c.seed, where);
  take(j, "eval_every", c.eval_every, where);
  take(j, "eval_batches", c.eval_batches, where);
  take(j, "save_every", c.save_every, where);
  take(j, "recompute", c.recompute, where);
  take(j, "ema", c.ema, where);
  take(j, "patience", c.patience, where);
  take(j, "bucket_mib", c.bucket_mib, where);
}

void load_config_file(const std::string& path, ModelConfig& model, TrainConfig& train, DataConfig& data) {
  const nlohmann::json json = parse_json_limited(read_text_file(path), "config file '" + path + "'");
  reject_unknown(json, {"model", "train", "data"}, path);
  if (json.contains("model")) update_from_json(model, json["model"], path + ": model");
  if (json.contains("train")) update_from_json(train, json["train"], path + ": train");
  if (!json.contains("data")) return;
  const nlohmann::json& section = json["data"];
  const std::string where = path + ": data";
  // The token counts are what the run loaded, recorded for the reader; they set nothing.
  reject_unknown(section, {"format", "path", "train_tokens", "valid_tokens", "test_tokens"}, where);
  take(section, "format", data.format, where);
  take(section, "path", data.path, where);
}

}  // namespace spt
