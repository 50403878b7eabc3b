#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "core/error.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "model/config_json.h"

namespace spt {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "state.json";
constexpr const char* kCheckpointFormat = "spt-checkpoint-1";
constexpr const char* kModelFormat = "spt";
constexpr const char* kDamagedHint = "the checkpoint is damaged: restore it from a copy or start the run afresh";

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

void add_model_tensors(SafetensorsWriter& writer, const Model& model) {
  for (const ParamInfo& p : model.params().all()) writer.add_f32(p.name, p.shape, model.weights().data() + p.offset);
  writer.set_metadata("format", kModelFormat);
  writer.set_metadata("model_config", to_json(model.config()).dump());
}

void add_optimizer_tensors(SafetensorsWriter& writer, const Model& model, const OptimizerState& optimizer) {
  for (const ParamInfo& p : model.params().all()) {
    writer.add_f32("exp_avg." + p.name, p.shape, optimizer.exp_avg.data() + p.offset);
    writer.add_f32("exp_avg_sq." + p.name, p.shape, optimizer.exp_avg_sq.data() + p.offset);
  }
  writer.set_metadata("step", std::to_string(optimizer.step));
}

void check_optimizer_size(const Model& model, const OptimizerState& optimizer) {
  const size_t n = static_cast<size_t>(model.params().total());
  SPT_CHECK(optimizer.exp_avg.size() == n && optimizer.exp_avg_sq.size() == n, "optimizer state holds ",
            optimizer.exp_avg.size(), " and ", optimizer.exp_avg_sq.size(), " floats but the model has ", n,
            ": build it as OptimizerState(model.params().total())");
}

// Describes how two model configs differ: "layers 4 (file) vs 2 (model)".
std::string config_difference(const ModelConfig& found, const ModelConfig& expected) {
  const nlohmann::json a = to_json(found), b = to_json(expected);
  std::string text;
  for (const auto& item : a.items()) {
    if (b.contains(item.key()) && b[item.key()] == item.value()) continue;
    text += (text.empty() ? "" : ", ") + item.key() + " " + item.value().dump() + " vs " +
            (b.contains(item.key()) ? b[item.key()].dump() : "none");
  }
  return text;
}

ModelConfig model_config_from_json_text(const std::string& text, const std::string& where) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(message(where, ": model_config is not valid JSON (", e.what(), ")"));
  }
  SPT_CHECK(json.is_object(), where, ": model_config must be a JSON object");
  const nlohmann::json keys = to_json(ModelConfig{});
  for (const auto& item : keys.items())
    SPT_CHECK(json.contains(item.key()), where, ": model_config lacks '", item.key(), "'");
  ModelConfig config;
  update_from_json(config, json, where + ": model_config");
  validate(config);
  return config;
}

ModelConfig model_config_of(const SafetensorsReader& reader) {
  const auto format = reader.metadata().find("format");
  SPT_CHECK(format != reader.metadata().end() && format->second == kModelFormat, reader.path(),
            ": not an spt model file (__metadata__ format is ",
            format == reader.metadata().end() ? std::string("missing") : "'" + format->second + "'",
            ", expected 'spt')");
  return model_config_from_json_text(reader.metadata_value("model_config"), reader.path());
}

// Reads one tensor per parameter, named prefix + name, into `out` (model layout); the
// file must hold exactly these tensors.
void read_parameter_tensors(SafetensorsReader& reader, const ParamTable& table, const std::string& prefix,
                            std::vector<float>& out) {  // out: (table.total())
  for (const ParamInfo& p : table.all()) reader.read_f32(prefix + p.name, p.shape, out.data() + p.offset);
}

void check_tensor_names(const SafetensorsReader& reader, const ParamTable& table,
                        const std::vector<std::string>& prefixes) {
  std::set<std::string> expected;
  for (const std::string& prefix : prefixes)
    for (const ParamInfo& p : table.all()) expected.insert(prefix + p.name);
  for (const TensorInfo& t : reader.tensors())
    SPT_CHECK(expected.count(t.name), reader.path(), ": tensor '", t.name,
              "' is not a parameter of this model (a file of another model?)");
  for (const std::string& prefix : prefixes)
    for (const ParamInfo& p : table.all())
      SPT_CHECK(reader.contains(prefix + p.name), reader.path(), ": tensor '", prefix + p.name,
                "' is missing (a file of another model?)");
}

int64_t parse_step(const std::string& text, const std::string& where) {
  size_t used = 0;
  int64_t step = -1;
  try {
    step = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  SPT_CHECK(used == text.size() && !text.empty() && step >= 0, where, ": __metadata__ step '", text,
            "' is not a step count; ", kDamagedHint);
  return step;
}

// ----- state.json ------------------------------------------------------------------------

struct FileRecord {
  int64_t bytes = 0;
  uint32_t crc32 = 0;
};

struct StateFile {
  CheckpointInfo info;
  std::string dir;  // where the checkpoint was found (dir, or dir.old after a crash)
  std::vector<std::pair<std::string, FileRecord>> files;
};

nlohmann::json state_json(const Model& model, const TrainConfig& train, const TrainState& state,
                          const std::vector<std::pair<std::string, FileRecord>>& files) {
  nlohmann::json record = nlohmann::json::object();
  for (const auto& [name, file] : files) record[name] = {{"bytes", file.bytes}, {"crc32", file.crc32}};
  nlohmann::json json = {{"format", kCheckpointFormat},
                         {"step", state.step},
                         {"tokens_seen", state.tokens_seen},
                         {"data_format", state.data_format},
                         {"data_path", state.data_path},
                         {"loss_scale", state.loss_scale},
                         {"clean_steps", state.clean_steps},
                         {"model", to_json(model.config())},
                         {"train", to_json(train)},
                         {"files", record}};
  // JSON has no NaN: a non-finite value is stored as null.
  if (std::isfinite(state.last_valid_bits)) json["last_valid_bits"] = state.last_valid_bits;
  else json["last_valid_bits"] = nullptr;
  return json;
}

template <typename Value>
Value state_field(const nlohmann::json& json, const char* key, const std::string& where) {
  SPT_CHECK(json.contains(key), where, ": missing '", key, "'; ", kDamagedHint);
  try {
    return json.at(key).get<Value>();
  } catch (const nlohmann::json::exception&) {
    throw Error(message(where, ": '", key, "' has the wrong type: ", json.at(key).dump(), "; ", kDamagedHint));
  }
}

// Finds the checkpoint: `dir`, or `dir.old` when a crash came between the two renames
// of a save (the old checkpoint was moved aside and the new one not yet moved in).
std::string locate_checkpoint(const std::string& requested) {
  const std::string dir = strip_trailing_slashes(requested);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    SPT_CHECK(fs::is_directory(dir, ec), "'", dir, "' is not a checkpoint directory");
    return dir;
  }
  const std::string old = dir + ".old";
  if (fs::is_directory(old, ec)) {
    std::fprintf(stderr,
                 "spt: note: '%s' is missing but '%s' exists (a save was interrupted); loading '%s'\n",
                 dir.c_str(), old.c_str(), old.c_str());
    return old;
  }
  throw Error(message("no checkpoint at '", dir, "': give the directory a run saved (<out>/checkpoint)"));
}

StateFile read_state(const std::string& requested) {
  StateFile result;
  result.dir = locate_checkpoint(requested);
  const std::string path = result.dir + "/" + kStateFile;
  std::ifstream in(path);
  SPT_CHECK(in, "cannot read '", path, "': the checkpoint is incomplete; ", kDamagedHint);
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(message(path, ": not valid JSON (", e.what(), "); ", kDamagedHint));
  }
  SPT_CHECK(json.is_object(), path, ": expected a JSON object; ", kDamagedHint);
  const std::string format = state_field<std::string>(json, "format", path);
  SPT_CHECK(format == kCheckpointFormat, path, ": format '", format, "' is not '", kCheckpointFormat,
            "': this checkpoint was written by another program or version");

  CheckpointInfo& info = result.info;
  SPT_CHECK(json.contains("model") && json["model"].is_object(), path, ": missing 'model'; ", kDamagedHint);
  info.model = model_config_from_json_text(json["model"].dump(), path);
  SPT_CHECK(json.contains("train"), path, ": missing 'train'; ", kDamagedHint);
  update_from_json(info.train, json["train"], path + ": train");
  info.state.step = state_field<int64_t>(json, "step", path);
  info.state.tokens_seen = state_field<int64_t>(json, "tokens_seen", path);
  info.state.data_format = state_field<std::string>(json, "data_format", path);
  info.state.data_path = state_field<std::string>(json, "data_path", path);
  info.state.loss_scale = state_field<double>(json, "loss_scale", path);
  info.state.clean_steps = state_field<int64_t>(json, "clean_steps", path);
  SPT_CHECK(json.contains("last_valid_bits"), path, ": missing 'last_valid_bits'; ", kDamagedHint);
  info.state.last_valid_bits = json["last_valid_bits"].is_null() ? std::numeric_limits<double>::quiet_NaN()
                                                                 : state_field<double>(json, "last_valid_bits", path);

  SPT_CHECK(json.contains("files") && json["files"].is_object(), path, ": missing 'files'; ", kDamagedHint);
  const nlohmann::json& files = json["files"];
  for (const auto& item : files.items()) {
    const std::string where = path + ": files." + item.key();
    SPT_CHECK(item.key() == kModelFile || item.key() == kOptimizerFile, path, ": unknown file '", item.key(), "'");
    FileRecord record;
    record.bytes = state_field<int64_t>(item.value(), "bytes", where);
    record.crc32 = state_field<uint32_t>(item.value(), "crc32", where);
    result.files.emplace_back(item.key(), record);
  }
  SPT_CHECK(files.contains(kModelFile), path, ": lists no ", kModelFile, "; ", kDamagedHint);
  info.has_optimizer = files.contains(kOptimizerFile);
  return result;
}

// Sizes always; CRC-32 too when `checksums` (it reads every byte).
void verify_files(const StateFile& state, bool checksums) {
  for (const auto& [name, record] : state.files) {
    const std::string path = state.dir + "/" + name;
    std::error_code ec;
    SPT_CHECK(fs::exists(path, ec), "'", path, "' is missing; ", kDamagedHint);
    const int64_t bytes = file_size(path);
    SPT_CHECK(bytes == record.bytes, path, ": ", bytes, " bytes but ", kStateFile, " records ", record.bytes,
              " (truncated or replaced); ", kDamagedHint);
    if (!checksums) continue;
    const uint32_t crc = file_crc32(path);
    SPT_CHECK(crc == record.crc32, path, ": CRC-32 ", crc, " differs from ", record.crc32, " recorded in ",
              kStateFile, " (the file is corrupted); ", kDamagedHint);
  }
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

}  // namespace

// ----- checkpoints -----------------------------------------------------------------------

void save_checkpoint(const std::string& requested, const Model& model, const OptimizerState* optimizer,
                     const TrainConfig& train, const TrainState& state) {
  if (optimizer) check_optimizer_size(model, *optimizer);
  const std::string dir = strip_trailing_slashes(requested);
  const std::string temp = dir + ".tmp-" + std::to_string(::getpid());
  const std::string old = dir + ".old";
  const std::string parent = parent_directory(dir);
  std::error_code ec;
  SPT_CHECK(!fs::exists(dir, ec) || fs::is_directory(dir, ec), "cannot save a checkpoint to '", dir,
            "': it exists and is not a directory; choose another --out");
  fs::create_directories(parent, ec);
  SPT_CHECK(fs::is_directory(parent), "cannot save a checkpoint to '", dir, "': cannot create the directory '",
            parent, "'", ec ? ": " + ec.message() : std::string());
  // A leftover of a crashed process that had this pid.
  remove_quietly(temp);
  SPT_CHECK(fs::create_directory(temp, ec) && !ec, "cannot save a checkpoint to '", dir, "': cannot create '",
            temp, "': ", ec ? ec.message() : std::string("it already exists"));

  try {
    std::vector<std::pair<std::string, FileRecord>> files;
    const auto write_tensor_file = [&](const char* name, const SafetensorsWriter& writer) {
      OutputFile out(temp + "/" + name);
      writer.write(out);
      out.sync_and_close();
      files.emplace_back(name, FileRecord{out.bytes_written(), out.crc32()});
    };
    {
      SafetensorsWriter writer;
      add_model_tensors(writer, model);
      write_tensor_file(kModelFile, writer);
    }
    if (optimizer) {
      SafetensorsWriter writer;
      add_optimizer_tensors(writer, model, *optimizer);
      write_tensor_file(kOptimizerFile, writer);
    }
    const std::string text = state_json(model, train, state, files).dump(2) + "\n";
    OutputFile out(temp + "/" + kStateFile);
    out.write(text.data(), static_cast<int64_t>(text.size()));
    out.sync_and_close();
    sync_directory(temp);
  } catch (const Error& e) {
    remove_quietly(temp);
    throw Error(message("cannot save a checkpoint to '", dir, "': ", e.what()));
  } catch (...) {
    remove_quietly(temp);
    throw;
  }

  // Swap. At every instant either `dir` or `old` holds a complete checkpoint.
  if (fs::exists(dir, ec)) {
    // `dir` is complete here, so an existing `old` is a leftover of an earlier save.
    remove_quietly(old);
    fs::rename(dir, old, ec);
    if (ec) {
      remove_quietly(temp);
      throw Error(message("cannot save a checkpoint to '", dir, "': cannot move the previous one to '", old,
                          "': ", ec.message()));
    }
  }
  fs::rename(temp, dir, ec);
  if (ec) {
    const std::string reason = ec.message();
    std::error_code restore;
    if (fs::exists(old, restore) && !fs::exists(dir, restore)) fs::rename(old, dir, restore);
    remove_quietly(temp);
    throw Error(message("cannot save a checkpoint to '", dir, "': cannot rename '", temp, "' to it: ", reason));
  }
  sync_directory(parent);
  fs::remove_all(old, ec);
  if (ec)
    std::fprintf(stderr, "spt: warning: could not remove the previous checkpoint '%s': %s\n", old.c_str(),
                 ec.message().c_str());
}

CheckpointInfo read_checkpoint_info(const std::string& dir) {
  const StateFile state = read_state(dir);
  verify_files(state, false);
  return state.info;
}

void load_checkpoint(const std::string& dir, Model& model, OptimizerState* optimizer) {
  const StateFile state = read_state(dir);
  const std::string state_path = state.dir + "/" + kStateFile;
  const ModelConfig& config = state.info.model;
  SPT_CHECK(to_json(config) == to_json(model.config()), "checkpoint '", state.dir,
            "' holds a different model (", config_difference(config, model.config()),
            ", checkpoint vs this model): build the model from the checkpoint's config or use another --out");
  SPT_CHECK(!optimizer || state.info.has_optimizer, "checkpoint '", state.dir,
            "' has no optimizer state (weights only): it cannot be resumed; load the weights alone instead");
  verify_files(state, true);

  const ParamTable& table = model.params();
  SafetensorsReader model_file(state.dir + "/" + kModelFile);
  const ModelConfig file_config = model_config_of(model_file);
  SPT_CHECK(to_json(file_config) == to_json(config), model_file.path(), ": its model_config differs from ",
            state_path, " (", config_difference(file_config, config), "); ", kDamagedHint);
  check_tensor_names(model_file, table, {""});
  std::vector<float> weights(table.total(), 0.0f);  // (total)
  read_parameter_tensors(model_file, table, "", weights);

  if (optimizer) {
    SafetensorsReader optimizer_file(state.dir + "/" + kOptimizerFile);
    check_tensor_names(optimizer_file, table, {"exp_avg.", "exp_avg_sq."});
    OptimizerState loaded(table.total());
    read_parameter_tensors(optimizer_file, table, "exp_avg.", loaded.exp_avg);
    read_parameter_tensors(optimizer_file, table, "exp_avg_sq.", loaded.exp_avg_sq);
    loaded.step = parse_step(optimizer_file.metadata_value("step"), optimizer_file.path());
    *optimizer = std::move(loaded);
  }
  std::copy(weights.begin(), weights.end(), model.weights().begin());
}

// ----- weights alone ---------------------------------------------------------------------

void save_model_file(const std::string& path, const Model& model) {
  SafetensorsWriter writer;
  add_model_tensors(writer, model);
  writer.write_file(path);
}

ModelConfig read_model_config(const std::string& model_file) {
  const SafetensorsReader reader(model_file);
  return model_config_of(reader);
}

void load_model_file(const std::string& path, Model& model) {
  SafetensorsReader reader(path);
  const ParamTable& table = model.params();
  check_tensor_names(reader, table, {""});
  std::vector<float> weights(table.total(), 0.0f);  // (total)
  read_parameter_tensors(reader, table, "", weights);
  std::copy(weights.begin(), weights.end(), model.weights().begin());
}

}  // namespace spt
