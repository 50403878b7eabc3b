// Forged tensor files: the header or the data of model.safetensors or
// optimizer.safetensors is changed and state.json is made to match (sizes, CRC-32s), as a
// tool or person editing a checkpoint would. A header that changes meaning, a value that
// is not finite, or a negative second moment must be refused by whatever reads the file.
#include <cmath>
#include <cstring>

#include "checkpoint_util.h"
#include "files.h"
#include "generators.h"

namespace spt::fuzz {
namespace {

using nlohmann::json;

struct Edit {
  std::string what;
  bool same_meaning = false;
};

std::string pick_tensor(const json& header, Rng& rng) {
  std::vector<std::string> names;
  for (const auto& item : header.items())
    if (item.key() != "__metadata__") names.push_back(item.key());
  return rng.pick(names);
}

Edit edit_shape(json& h, const std::string& t, Rng& rng, std::vector<std::string>& raw) {
  json& shape = h[t]["shape"];
  const size_t k = rng.below(shape.size());
  const int64_t dim = shape[k].get<int64_t>();
  switch (rng.below(8)) {
    case 0: shape[k] = dim + 1; break;
    case 1: shape[k] = dim - 1; break;
    case 2: shape.push_back(1); break;
    case 3: shape = json::array(); break;
    case 4: shape[k] = int64_t{1} << 40; break;
    case 5: shape = json::array({int64_t{1} << 32, int64_t{1} << 32}); break;
    case 6: raw.push_back(rng.pick(std::vector<std::string>{"-1", "1.5", "\"32\"", "null", "1e30"})); shape[k] = raw_marker(0); break;
    default: raw.push_back(deep_array(100000)); h[t]["shape"] = raw_marker(0); break;
  }
  return {"shape of '" + t + "' edited"};
}

Edit edit_offsets(json& h, const std::string& t, int64_t data_size, Rng& rng, std::vector<std::string>& raw) {
  json& o = h[t]["data_offsets"];
  const int64_t b = o[0].get<int64_t>(), e = o[1].get<int64_t>();
  // json::dump rather than string concatenation, on which GCC 12 warns falsely (-Wrestrict).
  const auto list = [](std::initializer_list<int64_t> values) { return json(values).dump(); };
  const std::vector<std::string> choices = {
      list({e, b}), list({b + 4, e}), list({b, e + 4}), list({b, data_size + 8}), "[0, 9223372036854775807]",
      list({-4, e}), list({b}), list({b, e, 0}), "\"x\"", "[0, 18446744073709551616]", "[0.5, 4]"};
  raw.push_back(rng.pick(choices));
  o = raw_marker(0);
  return {"data_offsets of '" + t + "' set to " + raw.back()};
}

Edit edit_names(json& h, const std::string& t, Rng& rng, std::vector<std::string>& raw) {
  switch (rng.below(5)) {
    case 0: h[t + "x"] = h[t]; h.erase(t); return {"tensor '" + t + "' renamed"};
    case 1: h.erase(t); return {"tensor '" + t + "' removed from the header"};
    case 2: h["extra"] = {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {0, 0}}}; return {"empty tensor 'extra' added"};
    case 3: h[t]["dtype"] = rng.pick(std::vector<std::string>{"F16", "BF16", "F64", "I32", "U8", "f32", ""}); return {"dtype of '" + t + "' changed"};
    default: raw.push_back(rng.pick(std::vector<std::string>{"3", "null", "[\"F32\"]"})); h[t]["dtype"] = raw_marker(0); return {"dtype of '" + t + "' ill-typed"};
  }
}

Edit edit_metadata(json& h, bool optimizer, Rng& rng, std::vector<std::string>& raw) {
  json& meta = h["__metadata__"];
  const uint64_t r = rng.below(optimizer ? 6 : 9);
  if (r == 0) { h.erase("__metadata__"); return {"__metadata__ removed"}; }
  if (r == 1) { meta["note"] = "hello"; return {"__metadata__ gained an unused 'note'", true}; }
  if (r == 2) { raw.push_back("42"); meta[meta.begin().key()] = raw_marker(0); return {"a __metadata__ value is a number"}; }
  if (optimizer) {
    const std::string step = rng.pick(std::vector<std::string>{"-1", "abc", "3", "99999999999999999999", "", "2.5"});
    meta["step"] = step;
    return {"__metadata__ step set to '" + step + "'"};
  }
  // What other tools write when they re-save the weights (torch's writer sets "pt"): spt
  // identifies its files by model_config and deliberately accepts any format, so the
  // meaning is unchanged and spt may go either way.
  if (r == 3) { meta["format"] = "pt"; return {"__metadata__ format set to 'pt'", true}; }
  json config = json::parse(meta["model_config"].get<std::string>());
  switch (r) {
    case 4: config["layers"] = 3; break;
    case 5: config["layers"] = 40000; break;
    case 6: config.erase("heads"); break;
    case 7: meta["model_config"] = "{\"layers\": "; return {"model_config is not JSON"};
    default: meta["model_config"] = "{\"layers\": " + deep_array(100000) + "}"; return {"model_config holds a 100,000-deep array"};
  }
  meta["model_config"] = config.dump();
  return {"model_config edited to " + config.dump()};
}

// Edits of the bytes around the header: its length field, a damaged header, trailing data.
Edit edit_framing(Bytes& file, Rng& rng) {
  const uint64_t header_length = [&] { uint64_t n = 0; for (int i = 7; i >= 0; --i) n = n << 8 | file[static_cast<size_t>(i)]; return n; }();
  const auto set_length = [&](uint64_t n) { for (int i = 0; i < 8; ++i) file[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i)); };
  const std::string text(file.begin() + 8, file.begin() + 8 + static_cast<int64_t>(header_length));
  const Bytes data(file.begin() + 8 + static_cast<int64_t>(header_length), file.end());
  switch (rng.below(9)) {
    case 0: set_length(uint64_t{1} << 63); return {"header length 2^63"};
    case 1: set_length(~uint64_t{0}); return {"header length 2^64-1"};
    case 2: set_length(file.size()); return {"header length = file size"};
    case 3: set_length(header_length + 8); return {"header length + 8"};
    case 4: set_length(header_length - 1); return {"header length - 1"};
    case 5: set_length(0); return {"header length 0"};
    case 6: file = build_safetensors(text.substr(0, text.size() / 2), data); return {"header JSON cut in half"};
    case 7: file = build_safetensors(rng.pick(std::vector<std::string>{"[]", "null", deep_array(100000), text + " x"}), data); return {"header replaced (array, null, deep array or trailing garbage)"};
    default: file.resize(file.size() + static_cast<size_t>(rng.pick(std::vector<int>{1, 8, 4096})), 0); return {"bytes appended after the data"};
  }
}

}  // namespace

void checkpoint_forged_header(const Base& base, Rng& rng, int64_t, Case& c) {
  const CheckpointCopy ck = copy_checkpoint(base, c);
  const bool optimizer = rng.chance(30);
  const std::string path = optimizer ? ck.optimizer : ck.model;
  Bytes file = read_file(path);
  Safetensors s = parse_safetensors(file);
  std::vector<std::string> raw;
  const std::string t = pick_tensor(s.header, rng);
  Edit edit;
  const uint64_t r = rng.below(100);
  if (r < 20) edit = edit_shape(s.header, t, rng, raw);
  else if (r < 38) edit = edit_offsets(s.header, t, static_cast<int64_t>(s.data.size()), rng, raw);
  else if (r < 55) edit = edit_names(s.header, t, rng, raw);
  else if (r < 72) edit = edit_metadata(s.header, optimizer, rng, raw);
  else if (r < 95) edit = edit_framing(file, rng);
  else edit = {"header padded with 8 more spaces", true};
  if (r < 72) file = build_safetensors(dump_with_raw(s.header, raw, -1), s.data);
  if (r >= 95) file = build_safetensors(s.header.dump() + std::string(8, ' '), s.data);
  write_file(path, file);
  forge_state(ck);
  c.mutation = std::string(optimizer ? "optimizer" : "model") + ".safetensors (state.json forged): " + edit.what;
  const Expect expect = edit.same_meaning ? Expect::either : Expect::refuse;
  add_checkpoint_commands(base, c, ck, optimizer ? Expect::either : expect, expect);
}

namespace {

// The tensor holding data byte `offset`, from the header's data_offsets.
std::string tensor_at(const json& header, int64_t offset) {
  for (const auto& item : header.items())
    if (item.key() != "__metadata__" && item.value()["data_offsets"][0].get<int64_t>() <= offset &&
        offset < item.value()["data_offsets"][1].get<int64_t>())
      return item.key();
  return "";
}

// True when the float holding data byte `offset` is not finite, or is a negative second moment.
bool float_is_bad(const Safetensors& s, int64_t offset) {
  float v;
  std::memcpy(&v, s.data.data() + offset / 4 * 4, 4);
  return !std::isfinite(v) || (v < 0 && tensor_at(s.header, offset).rfind("exp_avg_sq.", 0) == 0);
}

}  // namespace

void checkpoint_forged_payload(const Base& base, Rng& rng, int64_t, Case& c) {
  const CheckpointCopy ck = copy_checkpoint(base, c);
  const bool optimizer = rng.chance(40);
  const std::string path = optimizer ? ck.optimizer : ck.model;
  Safetensors s = parse_safetensors(read_file(path));
  const int64_t floats = static_cast<int64_t>(s.data.size()) / 4;
  bool bad = false;
  if (rng.chance(60)) {
    const float values[] = {NAN, INFINITY, -INFINITY, -1.0f};
    const float v = values[rng.below(optimizer ? 4 : 3)];
    int64_t at = rng.range(0, floats - 1);
    if (v == -1.0f)  // a negative second moment: aim at an exp_avg_sq tensor
      while (tensor_at(s.header, at * 4).rfind("exp_avg_sq.", 0) != 0) at = rng.range(0, floats - 1);
    std::memcpy(s.data.data() + at * 4, &v, 4);
    bad = true;
    c.mutation = "value " + std::to_string(v) + " written into '" + tensor_at(s.header, at * 4) + "'";
  } else {
    // Half the flips hit the byte holding the sign and the top of the exponent.
    const int64_t offset = rng.range(0, floats - 1) * 4 + (rng.chance(50) ? 3 : rng.range(0, 3));
    const int bit = static_cast<int>(rng.below(8));
    s.data[static_cast<size_t>(offset)] ^= static_cast<uint8_t>(1u << bit);
    bad = float_is_bad(s, offset);
    c.mutation = "data bit " + std::to_string(bit) + " of byte " + std::to_string(offset) + " flipped in '" +
                 tensor_at(s.header, offset) + "'" + (bad ? " (not finite or a negative moment)" : " (a finite value)");
  }
  write_file(path, build_safetensors(s.header.dump(), s.data));
  forge_state(ck);
  c.mutation = std::string(optimizer ? "optimizer" : "model") + ".safetensors (state.json forged): " + c.mutation;
  const Expect expect = bad ? Expect::refuse : Expect::either;
  add_checkpoint_commands(base, c, ck, optimizer ? Expect::either : expect, expect);
}

}  // namespace spt::fuzz
