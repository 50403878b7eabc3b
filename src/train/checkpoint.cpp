#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/file_util.h"
#include "io/input_file.h"
#include "io/json_limits.h"
#include "io/safetensors.h"
#include "model/config_json.h"
#include "train/checkpoint_internal.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using namespace checkpoint_detail;

constexpr const char* kModelFormat = "spt";
constexpr int64_t kMaxConfigBytes = int64_t{1} << 20;

// `weights` (model layout): the model's own, or the weight average.
void add_model_tensors(SafetensorsWriter& writer, const Model& model, const float* weights) {
  for (const ParamInfo& p : model.params().all()) writer.add_f32(p.name, p.shape, weights + p.offset);
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
  SPT_CHECK(optimizer.moments_begin == 0 && optimizer.exp_avg.size() == n && optimizer.exp_avg_sq.size() == n,
            "optimizer state holds ", optimizer.exp_avg.size(), " and ", optimizer.exp_avg_sq.size(),
            " floats from parameter ", optimizer.moments_begin, " on but the model has ", n,
            ": build it as OptimizerState(model.params().total()), or gather a data-parallel rank's shards "
            "(save_gathered_checkpoint)");
  SPT_CHECK(optimizer.ema.empty() || optimizer.ema.size() == n, "the weight average holds ", optimizer.ema.size(),
            " floats but the model has ", n, ": start it as a copy of the weights");
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
  SPT_CHECK(static_cast<int64_t>(text.size()) <= kMaxConfigBytes, where, ": model_config is ", text.size(),
            " bytes, too long for a config");
  const nlohmann::json json = parse_json_limited(text, where + ": model_config");
  SPT_CHECK(json.is_object(), where, ": model_config must be a JSON object");
  const nlohmann::json keys = to_json(ModelConfig{});
  for (const auto& item : keys.items())
    SPT_CHECK(json.contains(item.key()), where, ": model_config lacks '", item.key(), "'");
  ModelConfig config;
  update_from_json(config, json, where + ": model_config");
  try {
    validate(config);
  } catch (const Error& e) {
    throw Error(message(where, ": model_config: ", e.what()));
  }
  return config;
}

// The config in __metadata__. Other tools re-saving the weights may change or drop
// "format" (safetensors' torch writer sets "pt"); model_config is what identifies them.
ModelConfig model_config_of(const SafetensorsReader& reader) {
  const auto config = reader.metadata().find("model_config");
  if (config == reader.metadata().end()) {
    const auto format = reader.metadata().find("format");
    throw Error(message(reader.path(), ": not an spt model file (__metadata__ has no model_config; its format is ",
                        format == reader.metadata().end() ? std::string("missing") : "'" + format->second + "'",
                        "): re-save it with the __metadata__ of the file spt wrote"));
  }
  return model_config_from_json_text(config->second, reader.path());
}

// The parameter count a config describes, without building the model (so that a forged
// config cannot make anything allocate before it is compared with the file).
long double parameter_count(const ModelConfig& c) {
  const long double C = c.width, F = c.ff_width(), QKV = c.qkv_width(), V = kVocab;
  long double positions = 0;
  for (int size : c.pos_sizes) positions += size;
  const long double layer = 4 * C + QKV * C + QKV + C * C + C + 2 * F * C + F + C;
  return 2 * V * C + V + positions * C + 2 * C + c.layers * layer;
}

void check_parameter_count(const SafetensorsReader& reader, const ModelConfig& config) {
  long double held = 0;
  for (const TensorInfo& t : reader.tensors()) held += static_cast<long double>(t.bytes()) / dtype_size(t.dtype);
  const long double wanted = parameter_count(config);
  SPT_CHECK(held == wanted, reader.path(), ": its model config describes ", static_cast<double>(wanted),
            " parameters but its tensors hold ", static_cast<double>(held), " (an edited config or another model's file)");
}

// Reads one tensor per parameter, named prefix + name, into `out` (model layout);
// a NaN or infinite value, or a negative one where `non_negative` (Adam's second moments,
// whose square root the update takes), is refused naming the tensor.
void read_parameter_tensors(SafetensorsReader& reader, const ParamTable& table, const std::string& prefix,
                            std::vector<float>& out, bool non_negative = false) {  // out: (table.total())
  for (const ParamInfo& p : table.all()) {
    float* values = out.data() + p.offset;
    reader.read_f32(prefix + p.name, p.shape, values);
    const float* bad = std::find_if(values, values + p.size,
                                    [&](float v) { return !std::isfinite(v) || (non_negative && v < 0); });
    SPT_CHECK(bad == values + p.size, reader.path(), ": tensor '", prefix + p.name, "' holds ", *bad,
              " at element ", bad - values, non_negative ? ", but a second moment is never negative" : "",
              ": the values are unusable (a diverged run or a damaged file)");
  }
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

const FileRecord* record_of(const StateFile& state, const std::string& name) {
  for (const auto& [file, record] : state.files)
    if (file == name) return &record;
  return nullptr;
}

// A missing file is "missing"; only a file that exists and fails its check is damage.
void require_listed_file(const std::string& path) {
  std::error_code ec;
  SPT_CHECK(fs::exists(path, ec), "'", path, "' is missing (state.json lists it): copy the whole checkpoint ",
            "directory, or give the model file alone to eval or sample");
}

void verify_file(const std::string& path, const FileRecord& record, bool checksum) {
  require_listed_file(path);
  const int64_t bytes = file_size(path);
  SPT_CHECK(bytes == record.bytes, path, ": ", bytes, " bytes but state.json records ", record.bytes,
            " (truncated or replaced); ", kDamagedHint);
  if (!checksum) return;
  const uint32_t crc = file_crc32(path);
  SPT_CHECK(crc == record.crc32, path, ": CRC-32 ", crc, " differs from ", record.crc32,
            " recorded in state.json (the file is corrupted); ", kDamagedHint);
}

// A weights file (model.safetensors or model_ema.safetensors) is "the one state.json
// describes" when its size is the recorded one: then its checksum must match. A re-saved
// copy (another size) is checked by content.
bool verify_weights_file(const std::string& path, const FileRecord& record) {
  require_listed_file(path);
  const int64_t bytes = file_size(path);
  if (bytes == record.bytes) {
    verify_file(path, record, true);
    return true;
  }
  note_once(message("'", path, "' is ", bytes, " bytes, not the ", record.bytes,
                    " that state.json records (re-saved by another tool?): checked its config, tensor names, shapes, ",
                    "F32 dtype and finite values instead of its checksum"));
  return false;
}

CheckpointInfo read_info_once(const std::string& requested) {
  const Located at = locate_checkpoint(requested);
  CheckpointInfo info;
  if (at.has_state) {
    const StateFile state = read_state_file(at.dir + "/" + kStateFile);
    const FileRecord* optimizer = record_of(state, kOptimizerFile);
    std::error_code ec;
    const std::string optimizer_path = at.dir + "/" + kOptimizerFile;
    if (optimizer && fs::exists(optimizer_path, ec)) verify_file(optimizer_path, *optimizer, false);
    info = state.info;
  }
  if (at.has_state) require_listed_file(at.model_file);
  const SafetensorsReader reader(at.model_file);
  const ModelConfig file_config = model_config_of(reader);
  if (!at.has_state) {
    info.model = file_config;
    info.weights_only = true;
  }
  SPT_CHECK(to_json(file_config) == to_json(info.model), at.model_file, ": its model_config differs from ", at.dir,
            "/state.json (", config_difference(file_config, info.model), "); ", kDamagedHint);
  check_parameter_count(reader, info.model);
  return info;
}

void load_model_tensors(const std::string& path, Model& model, std::vector<float>& weights) {
  SafetensorsReader reader(path);
  const ModelConfig file_config = model_config_of(reader);
  SPT_CHECK(to_json(file_config) == to_json(model.config()), path, ": its model_config differs from the model's (",
            config_difference(file_config, model.config()), ")");
  check_parameter_count(reader, file_config);
  check_tensor_names(reader, model.params(), {""});
  read_parameter_tensors(reader, model.params(), "", weights);
}

// `max_step`: the training steps state.json records; Adam counts only the steps it took
// (a step whose gradients were not finite is skipped), never more.
void load_optimizer(const std::string& path, const ParamTable& table, int64_t max_step, OptimizerState& out) {
  SafetensorsReader reader(path);
  check_tensor_names(reader, table, {"exp_avg.", "exp_avg_sq."});
  OptimizerState loaded(table.total());
  loaded.step = parse_step(reader.metadata_value("step"), reader.path());
  SPT_CHECK(loaded.step <= max_step, reader.path(), ": __metadata__ step ", loaded.step, " exceeds the ", max_step,
            " training steps that state.json records; ", kDamagedHint);
  read_parameter_tensors(reader, table, "exp_avg.", loaded.exp_avg);
  read_parameter_tensors(reader, table, "exp_avg_sq.", loaded.exp_avg_sq, true);
  out = std::move(loaded);
}

// The weight average of a resumed run into optimizer.ema: present exactly when the run
// averages (train.ema > 0).
void load_average(const Located& at, const StateFile& state, Model& model, OptimizerState& optimizer) {
  optimizer.ema.clear();
  if (state.info.train.ema <= 0) return;
  SPT_CHECK(record_of(state, kEmaFile) != nullptr, "checkpoint '", at.dir, "' averages its weights (train.ema ",
            state.info.train.ema, ") but state.json lists no ", kEmaFile, "; ", kDamagedHint);
  std::vector<float> average(model.params().total(), 0.0f);  // (total)
  load_model_tensors(at.dir + "/" + kEmaFile, model, average);
  optimizer.ema = std::move(average);
}

void load_once(const std::string& requested, Model& model, OptimizerState* optimizer) {
  const Located at = locate_checkpoint(requested);
  std::vector<float> weights(model.params().total(), 0.0f);  // (total)
  if (!at.has_state) {
    SPT_CHECK(!optimizer, "'", at.model_file, "' holds weights only (no state.json): it cannot be resumed");
    load_model_tensors(at.model_file, model, weights);
    note_once(message("'", at.model_file, "' has no state.json: checked its config, tensor names, shapes, F32 ",
                      "dtype and finite values (there is no checksum to verify)"));
  } else {
    const StateFile state = read_state_file(at.dir + "/" + kStateFile);
    const ModelConfig& config = state.info.model;
    SPT_CHECK(to_json(config) == to_json(model.config()), "checkpoint '", at.dir, "' holds a different model (",
              config_difference(config, model.config()),
              ", checkpoint vs this model): build the model from the checkpoint's config or use another --out");
    SPT_CHECK(!optimizer || state.info.has_optimizer, "checkpoint '", at.dir,
              "' has no optimizer state (weights only): it cannot be resumed; load the weights alone instead");
    if (optimizer) {
      for (const auto& [name, record] : state.files) verify_file(at.dir + "/" + name, record, true);
    } else {
      verify_weights_file(at.model_file, *record_of(state, kModelFile));
    }
    load_model_tensors(at.model_file, model, weights);
    if (optimizer) {
      OptimizerState loaded;
      load_optimizer(at.dir + "/" + kOptimizerFile, model.params(), state.info.state.step, loaded);
      load_average(at, state, model, loaded);
      *optimizer = std::move(loaded);
    }
  }
  std::copy(weights.begin(), weights.end(), model.weights().begin());
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

// Writes the checkpoint's files into `temp` (created here) and syncs them.
void write_checkpoint_files(const std::string& temp, const Model& model, const OptimizerState* optimizer,
                            const TrainConfig& train, const TrainState& state) {
  FileRecords files;
  const auto write_tensor_file = [&](const char* name, const SafetensorsWriter& writer) {
    OutputFile out(temp + "/" + name);
    writer.write(out);
    out.sync_and_close();
    files.emplace_back(name, FileRecord{out.bytes_written(), out.crc32()});
  };
  {
    SafetensorsWriter writer;
    add_model_tensors(writer, model, model.weights().data());
    write_tensor_file(kModelFile, writer);
  }
  if (optimizer) {
    SafetensorsWriter writer;
    add_optimizer_tensors(writer, model, *optimizer);
    write_tensor_file(kOptimizerFile, writer);
  }
  if (optimizer && !optimizer->ema.empty()) {
    SafetensorsWriter writer;
    add_model_tensors(writer, model, optimizer->ema.data());
    writer.set_metadata("ema_decay", message(train.ema));
    write_tensor_file(kEmaFile, writer);
  }
  const std::string text = state_json_text(model.config(), train, state, files);
  OutputFile out(temp + "/" + kStateFile);
  out.write(text.data(), static_cast<int64_t>(text.size()));
  out.sync_and_close();
  sync_directory(temp);
}

// Swaps `temp` in. At every instant either `dir` or `old` holds a complete checkpoint.
void swap_into_place(const std::string& temp, const std::string& dir) {
  const std::string old = dir + ".old";
  std::error_code ec;
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
  sync_directory(parent_directory(dir));
  fs::remove_all(old, ec);
  if (ec)
    std::fprintf(stderr, "spt: warning: could not remove the previous checkpoint '%s': %s\n", old.c_str(),
                 ec.message().c_str());
}

}  // namespace

// ----- checkpoints -----------------------------------------------------------------------

void save_checkpoint(const std::string& requested, const Model& model, const OptimizerState* optimizer,
                     const TrainConfig& train, const TrainState& state) {
  if (optimizer) check_optimizer_size(model, *optimizer);
  const std::string dir = strip_trailing_slashes(requested);
  const std::string temp = dir + ".tmp-" + std::to_string(::getpid());
  const std::string parent = parent_directory(dir);
  std::error_code ec;
  SPT_CHECK(!fs::exists(dir, ec) || fs::is_directory(dir, ec), "cannot save a checkpoint to '", dir,
            "': it exists and is not a directory; choose another --out");
  fs::create_directories(parent, ec);
  SPT_CHECK(fs::is_directory(parent), "cannot save a checkpoint to '", dir, "': cannot create the directory '",
            parent, "'", ec ? ": " + ec.message() : std::string());
  remove_stale_checkpoint_temps(dir, false);
  remove_quietly(temp);  // a leftover of a crashed process that had this pid
  SPT_CHECK(fs::create_directory(temp, ec) && !ec, "cannot save a checkpoint to '", dir, "': cannot create '",
            temp, "': ", ec ? ec.message() : std::string("it already exists"));
  try {
    write_checkpoint_files(temp, model, optimizer, train, state);
  } catch (const Error& e) {
    remove_quietly(temp);
    throw Error(message("cannot save a checkpoint to '", dir, "': ", e.what()));
  } catch (...) {
    remove_quietly(temp);
    throw;
  }
  swap_into_place(temp, dir);
}

CheckpointInfo read_checkpoint_info(const std::string& dir) {
  return read_during_saves(dir, [&] { return read_info_once(dir); });
}

void load_checkpoint(const std::string& dir, Model& model, OptimizerState* optimizer) {
  read_during_saves(dir, [&] { load_once(dir, model, optimizer); });
}

LoadedWeights load_weights(const std::string& dir, Model& model, bool prefer_average) {
  return read_during_saves(dir, [&] {
    // The trained weights are loaded (and so checked) in every case: a damaged checkpoint
    // is refused whichever of its weights are asked for.
    load_once(dir, model, nullptr);
    const Located at = locate_checkpoint(dir);
    if (!prefer_average || !at.has_state || at.named_file) return LoadedWeights{false, at.model_file};
    const StateFile state = read_state_file(at.dir + "/" + kStateFile);
    const FileRecord* record = record_of(state, kEmaFile);
    if (record == nullptr) return LoadedWeights{false, at.model_file};
    const std::string path = at.dir + "/" + kEmaFile;
    verify_weights_file(path, *record);
    std::vector<float> average(model.params().total(), 0.0f);  // (total)
    load_model_tensors(path, model, average);
    std::copy(average.begin(), average.end(), model.weights().begin());
    return LoadedWeights{true, path};
  });
}

// ----- weights alone ---------------------------------------------------------------------

void save_model_file(const std::string& path, const Model& model) {
  SafetensorsWriter writer;
  add_model_tensors(writer, model, model.weights().data());
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
