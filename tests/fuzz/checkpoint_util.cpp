#include "checkpoint_util.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "files.h"

namespace spt::fuzz {

using nlohmann::json;

CheckpointCopy copy_checkpoint(const Base& base, const Case& c) {
  CheckpointCopy ck;
  ck.run = c.dir + "/run";
  copy_tree(base.text_run, ck.run);
  ck.dir = ck.run + "/checkpoint";
  ck.model = ck.dir + "/model.safetensors";
  ck.optimizer = ck.dir + "/optimizer.safetensors";
  ck.ema = ck.dir + "/model_ema.safetensors";
  ck.state = ck.dir + "/state.json";
  return ck;
}

void add_checkpoint_commands(const Base& base, Case& c, const CheckpointCopy& ck, Expect eval_and_sample,
                             Expect resume, const std::vector<std::string>& names) {
  std::vector<std::string> all = {c.dir};
  all.insert(all.end(), names.begin(), names.end());
  c.commands.push_back({{"eval", "--checkpoint", ck.dir, "--max-windows", "1", "--data", base.text},
                        eval_and_sample, all});
  c.commands.push_back({{"sample", "--checkpoint", ck.dir, "--length", "8", "--out", c.dir + "/sample.txt"},
                        eval_and_sample, all});
  c.commands.push_back({{"train", "--out", ck.run, "--resume", "--steps", std::to_string(base.text_step + 1),
                         "--data", base.text},
                        resume, all});
}

Safetensors parse_safetensors(const Bytes& file) {
  if (file.size() < 8) throw std::runtime_error("short safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | file[static_cast<size_t>(i)];
  Safetensors s;
  s.data_start = 8 + static_cast<int64_t>(n);
  s.header = json::parse(file.begin() + 8, file.begin() + s.data_start);
  s.data.assign(file.begin() + s.data_start, file.end());
  return s;
}

Bytes build_safetensors(const std::string& header_text, const Bytes& data) {
  std::string text = header_text;
  while (text.size() % 8 != 0) text += ' ';
  Bytes out(8 + text.size() + data.size());
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));
  std::copy(text.begin(), text.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<int64_t>(text.size()));
  return out;
}

void forge_state(const CheckpointCopy& ck) {
  const Bytes text = read_file(ck.state);
  json state = json::parse(text.begin(), text.end());
  for (const auto& [name, path] : {std::pair{"model.safetensors", ck.model}, {"optimizer.safetensors", ck.optimizer},
                                   {"model_ema.safetensors", ck.ema}}) {
    if (!state["files"].contains(name)) continue;
    const Bytes bytes = read_file(path);
    state["files"][name] = {{"bytes", bytes.size()}, {"crc32", crc32_of(bytes)}};
  }
  // The checksum spt keeps of the rest of state.json: CRC-32 of its compact dump.
  if (state.contains("state_crc32")) {
    state.erase("state_crc32");
    const std::string canonical = state.dump();
    state["state_crc32"] = crc32_of(Bytes(canonical.begin(), canonical.end()));
  }
  write_text(ck.state, state.dump(2) + "\n");
}

std::string raw_marker(size_t k) { return "@@RAW" + std::to_string(k) + "@@"; }

std::string dump_with_raw(const json& value, const std::vector<std::string>& raw, int indent) {
  std::string text = value.dump(indent);
  for (size_t k = 0; k < raw.size(); ++k) {
    const std::string marker = "\"" + raw_marker(k) + "\"";
    for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + raw[k].size()))
      text.replace(at, marker.size(), raw[k]);
  }
  return text;
}

std::string deep_array(int depth) { return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']'); }

bool same_json(const Bytes& a, const Bytes& b) {
  try {
    return json::parse(a.begin(), a.end()) == json::parse(b.begin(), b.end());
  } catch (const json::exception&) {
    return false;
  }
}

}  // namespace spt::fuzz
