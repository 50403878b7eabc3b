// state.json: the step, the data set, both configs and the size and CRC-32 of each tensor
// file, protected by a CRC-32 of its own. Reading it checks every field's presence, type
// and range before anything is built from it, so an edited or damaged file is refused
// with the field named rather than silently changing a resumed run.
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "io/file_util.h"
#include "io/input_file.h"
#include "io/json_limits.h"
#include "model/config_json.h"
#include "train/checkpoint_internal.h"

namespace spt::checkpoint_detail {
namespace {

using nlohmann::json;

constexpr const char* kCheckpointFormat = "spt-checkpoint-1";
constexpr const char* kChecksumKey = "state_crc32";
constexpr int64_t kMaxStateBytes = int64_t{16} << 20;

uint32_t crc_of(const json& content) {
  const std::string text = content.dump();  // canonical: compact, keys sorted
  return crc32_update(0, text.data(), static_cast<int64_t>(text.size()));
}

// Verifies the checksum when the file has one; old checkpoints without it get a note.
void check_checksum(json& root, const std::string& path) {
  if (!root.contains(kChecksumKey)) {
    note_once(message("'", path, "' has no ", kChecksumKey,
                      " (written by an older spt): its fields are type-checked but edits cannot be detected"));
    return;
  }
  const json recorded = root[kChecksumKey];
  root.erase(kChecksumKey);
  SPT_CHECK(recorded.is_number_unsigned() && recorded.get<uint64_t>() <= 0xFFFFFFFFu, path, ": '", kChecksumKey,
            "' must be a 32-bit unsigned integer, got ", json_excerpt(recorded), "; ", kDamagedHint);
  const uint32_t crc = crc_of(root);
  SPT_CHECK(crc == recorded.get<uint32_t>(), path, ": CRC-32 ", crc, " of its content differs from the recorded ",
            kChecksumKey, " ", recorded.get<uint32_t>(), " (the file was edited or is corrupted); ", kDamagedHint);
}

const json& field(const json& object, const char* key, const std::string& where) {
  SPT_CHECK(object.contains(key), where, ": '", key, "' is missing; ", kDamagedHint);
  return object.at(key);
}

int64_t integer_field(const json& object, const char* key, int64_t min, const std::string& where) {
  return json_integer(field(object, key, where), key, min, INT64_MAX, where, {}, kDamagedHint);
}

std::string string_field(const json& object, const char* key, const std::string& where) {
  const json& value = field(object, key, where);
  SPT_CHECK(value.is_string(), where, ": '", key, "' must be a string, got ", json_excerpt(value), "; ", kDamagedHint);
  return value.get<std::string>();
}

// A config section must hold every field, each of its exact JSON type and value: after
// reading, writing it back must give the same JSON (1.5 read into an integer, or a
// value out of the field's range, would not).
template <typename Config>
Config config_section(const json& root, const char* key, const std::string& path) {
  const std::string where = path + ": " + key;
  const json& section = field(root, key, path);
  SPT_CHECK(section.is_object(), where, " must be a JSON object; ", kDamagedHint);
  Config config;
  const json defaults = to_json(config);
  for (const auto& item : defaults.items())
    SPT_CHECK(section.contains(item.key()), where, ": '", item.key(), "' is missing; ", kDamagedHint);
  update_from_json(config, section, where);
  const json written = to_json(config);
  for (const auto& item : section.items()) {
    // Fields written only when set (sample_rate, ema, patience) read back as absent at 0.
    const json back = written.contains(item.key()) ? written.at(item.key()) : json(0);
    SPT_CHECK(back == item.value(), where, ": '", item.key(), "' is ", json_excerpt(item.value()),
              ", not a valid value of its type; ", kDamagedHint);
  }
  try {
    validate(config);
  } catch (const Error& e) {
    throw Error(message(where, ": ", e.what(), "; ", kDamagedHint));
  }
  return config;
}

FileRecords file_records(const json& root, const std::string& path) {
  const json& files = field(root, "files", path);
  SPT_CHECK(files.is_object(), path, ": 'files' must be a JSON object; ", kDamagedHint);
  FileRecords records;
  for (const auto& item : files.items()) {
    const std::string where = path + ": files." + item.key();
    SPT_CHECK(item.key() == kModelFile || item.key() == kOptimizerFile || item.key() == kEmaFile, path,
              ": unknown file '", item.key(), "'");
    SPT_CHECK(item.value().is_object(), where, " must be a JSON object; ", kDamagedHint);
    FileRecord record;
    record.bytes = integer_field(item.value(), "bytes", 0, where);
    const int64_t crc = integer_field(item.value(), "crc32", 0, where);
    SPT_CHECK(crc <= 0xFFFFFFFF, where, ": 'crc32' ", crc, " is not a 32-bit value; ", kDamagedHint);
    record.crc32 = static_cast<uint32_t>(crc);
    records.emplace_back(item.key(), record);
  }
  SPT_CHECK(files.contains(kModelFile), path, ": lists no ", kModelFile, "; ", kDamagedHint);
  return records;
}

// The best validation so far; absent from checkpoints of an older spt (none yet).
void best_fields(const json& root, const std::string& path, TrainState& s) {
  if (!root.contains("best_valid_bits")) return;
  const json& best = root.at("best_valid_bits");
  SPT_CHECK(best.is_null() || (best.is_number() && std::isfinite(best.get<double>()) && best.get<double>() >= 0),
            path, ": 'best_valid_bits' must be a non-negative number or null, got ", json_excerpt(best), "; ",
            kDamagedHint);
  if (best.is_number()) s.best_valid_bits = best.get<double>();
  s.best_step = integer_field(root, "best_step", 0, path);
  SPT_CHECK(s.best_step <= s.step, path, ": 'best_step' ", s.best_step, " is after 'step' ", s.step, "; ",
            kDamagedHint);
  s.passes_since_best = integer_field(root, "passes_since_best", 0, path);
}

TrainState state_fields(const json& root, const std::string& path) {
  TrainState s;
  s.step = integer_field(root, "step", 0, path);
  s.tokens_seen = integer_field(root, "tokens_seen", 0, path);
  s.data_format = string_field(root, "data_format", path);
  s.data_path = string_field(root, "data_path", path);
  const json& scale = field(root, "loss_scale", path);
  SPT_CHECK(scale.is_number() && std::isfinite(scale.get<double>()) && scale.get<double>() >= 1, path,
            ": 'loss_scale' must be a finite number of at least 1, got ", json_excerpt(scale), "; ", kDamagedHint);
  s.loss_scale = scale.get<double>();
  s.clean_steps = integer_field(root, "clean_steps", 0, path);
  const json& bits = field(root, "last_valid_bits", path);
  SPT_CHECK(bits.is_null() || bits.is_number(), path, ": 'last_valid_bits' must be a number or null, got ",
            json_excerpt(bits), "; ", kDamagedHint);
  s.last_valid_bits = bits.is_null() ? std::numeric_limits<double>::quiet_NaN() : bits.get<double>();
  best_fields(root, path, s);
  return s;
}

}  // namespace

std::string state_json_text(const ModelConfig& model, const TrainConfig& train, const TrainState& state,
                            const FileRecords& files) {
  json record = json::object();
  for (const auto& [name, file] : files) record[name] = {{"bytes", file.bytes}, {"crc32", file.crc32}};
  json root = {{"format", kCheckpointFormat}, {"step", state.step},           {"tokens_seen", state.tokens_seen},
               {"data_format", state.data_format}, {"data_path", state.data_path}, {"loss_scale", state.loss_scale},
               {"clean_steps", state.clean_steps}, {"model", to_json(model)}, {"train", to_json(train)},
               {"files", record}};
  // JSON has no NaN: a non-finite value is stored as null.
  if (std::isfinite(state.last_valid_bits)) root["last_valid_bits"] = state.last_valid_bits;
  else root["last_valid_bits"] = nullptr;
  if (std::isfinite(state.best_valid_bits)) root["best_valid_bits"] = state.best_valid_bits;
  else root["best_valid_bits"] = nullptr;
  root["best_step"] = state.best_step;
  root["passes_since_best"] = state.passes_since_best;
  root[kChecksumKey] = crc_of(root);
  return root.dump(2) + "\n";
}

StateFile read_state_file(const std::string& path) {
  json root = parse_json_limited(read_text_file(path, kMaxStateBytes), path);
  SPT_CHECK(root.is_object(), path, ": expected a JSON object; ", kDamagedHint);
  const std::string format = string_field(root, "format", path);
  SPT_CHECK(format == kCheckpointFormat, path, ": format '", format, "' is not '", kCheckpointFormat,
            "': this checkpoint was written by another program or version");
  check_checksum(root, path);
  StateFile result;
  CheckpointInfo& info = result.info;
  info.model = config_section<ModelConfig>(root, "model", path);
  info.train = config_section<TrainConfig>(root, "train", path);
  info.state = state_fields(root, path);
  result.files = file_records(root, path);
  for (const auto& [name, record] : result.files) {
    info.has_optimizer = info.has_optimizer || name == kOptimizerFile;
    info.has_ema = info.has_ema || name == kEmaFile;
  }
  return result;
}

}  // namespace spt::checkpoint_detail
