// --config mutations, run through `spt train --config F --steps 1` from scratch. A
// config is the user's own file, so a valid edit must train; a value of the wrong type,
// out of range or too large for memory, an unknown key and broken JSON must be refused.
// Byte-level damage whose result still parses with known keys may go either way.
#include <set>

#include "checkpoint_util.h"
#include "files.h"
#include "generators.h"
#include "json_values.h"

namespace spt::fuzz {
namespace {

using nlohmann::json;

// Fields the command line overrides (--steps 1 --eval-batches 1): their values do not count.
const std::set<std::string> kOverridden = {"steps", "eval_batches"};

// Does damaged text still parse into sections and keys the base config has?
Expect byte_damage_oracle(const json& base, const std::string& text) {
  json parsed;
  try {
    parsed = json::parse(text);
  } catch (const json::exception&) {
    return Expect::refuse;
  }
  if (!parsed.is_object()) return Expect::refuse;
  for (const auto& section : parsed.items()) {
    if (!base.contains(section.key()) || !section.value().is_object()) return Expect::refuse;
    for (const auto& field : section.value().items())
      if (!base[section.key()].contains(field.key())) return Expect::refuse;
  }
  return Expect::either;
}

struct Edit {
  std::string text, what, key;
  Expect expect = Expect::refuse;
  std::string value;  // the new value's text, which an error may quote instead of the key
  std::vector<std::string> tokens;  // byte damage: the damaged tokens

  Edit() = default;
  Edit(std::string text_, std::string what_, std::string key_, Expect expect_, std::string value_ = "")
      : text(std::move(text_)), what(std::move(what_)), key(std::move(key_)), expect(expect_),
        value(std::move(value_)) {}
};

Edit edit_field(json config, Rng& rng) {
  const std::string section = rng.chance(55) ? "model" : "train";
  std::vector<std::string> keys;
  for (const auto& item : config[section].items()) keys.push_back(item.key());
  const std::string key = rng.pick(keys);
  const std::string where = section + "." + key;
  const uint64_t r = rng.below(100);
  if (r < 8) {
    config[section].erase(key);
    return {config.dump(2), where + " deleted (the default applies)", key, Expect::either};
  }
  if (r < 14) {
    config[section]["unknown_key"] = 1;
    return {config.dump(2), section + ".unknown_key added", "unknown_key", Expect::refuse};
  }
  const ValueKind kinds[] = {ValueKind::ill_typed, ValueKind::out_of_range, ValueKind::huge, ValueKind::valid,
                             ValueKind::deep};
  ValueKind kind = kinds[rng.below(r < 95 ? 4 : 5)];
  if (kOverridden.count(key) && kind != ValueKind::deep) kind = ValueKind::ill_typed;
  ValueEdit edit = value_for(kind, key, config[section][key], rng);
  if (edit.raw.empty()) edit = value_for(ValueKind::ill_typed, key, config[section][key], rng);
  config[section][key] = raw_marker(0);
  const Expect expect = edit.kind == ValueKind::valid ? Expect::accept : Expect::refuse;
  return {dump_with_raw(config, {edit.raw}, 2), where + " " + kind_name(edit.kind) + " value " +
          (edit.raw.size() > 40 ? "[[[...]]]" : edit.raw), key, expect, edit.raw.size() <= 40 ? edit.raw : ""};
}

Edit edit_whole(const json& config, Rng& rng) {
  const std::string text = config.dump(2);
  switch (rng.below(9)) {
    case 0: return {"", "empty file", "", Expect::refuse};
    case 1: return {"[]", "a JSON array", "", Expect::refuse};
    case 2: return {"null", "null", "", Expect::refuse};
    case 3: return {"{\"model\": []}", "model is an array", "model", Expect::refuse};
    case 4: return {deep_array(100000), "a 100,000-deep array", "", Expect::refuse};
    case 5: {
      std::string deep;
      for (int k = 0; k < 100000; ++k) deep += "{\"a\":";
      return {"{\"model\": {\"layers\": " + deep + "1" + std::string(100000, '}') + "}}", "a 100,000-deep object", "", Expect::refuse};
    }
    case 6: return {text + " {}", "a second object after the first", "", Expect::refuse};
    case 7: return {"// a comment\n" + text, "a comment before the object", "", Expect::refuse};
    default: return {config.dump(-1), "reformatted, same content", "", Expect::accept};
  }
}

}  // namespace

void config_edit(const Base& base, Rng& rng, int64_t, Case& c) {
  const Bytes base_text = read_file(base.config);
  const json config = json::parse(base_text.begin(), base_text.end());
  const std::string path = c.dir + "/config.json";
  Edit edit;
  const uint64_t r = rng.below(100);
  if (r < 25) {
    Bytes b = base_text;
    if (r < 15) edit.what = flip_bits(b, 0, static_cast<int64_t>(b.size()), static_cast<int>(rng.range(1, 3)), rng);
    else { b.resize(static_cast<size_t>(rng.range(0, static_cast<int64_t>(b.size()) - 2))); edit.what = "truncated to " + std::to_string(b.size()) + " bytes"; }
    edit.text.assign(b.begin(), b.end());
    edit.expect = byte_damage_oracle(config, edit.text);
    edit.tokens = changed_tokens(base_text, b);
  } else if (r < 88) {
    edit = edit_field(config, rng);
  } else {
    edit = edit_whole(config, rng);
  }
  write_text(path, edit.text);
  c.mutation = "--config: " + edit.what;
  std::vector<std::string> names = {path};
  for (const std::string& name : {edit.key, edit.value})
    if (!name.empty()) names.push_back(name);
  names.insert(names.end(), edit.tokens.begin(), edit.tokens.end());
  c.commands.push_back({{"train", "--config", path, "--data", base.text, "--out", c.dir + "/run", "--steps", "1",
                         "--eval-batches", "1"},
                        edit.expect,
                        names});
}

std::vector<Category> categories() {
  return {{"ckpt.bit_flip", 350, checkpoint_bit_flips},
          {"ckpt.truncate", 250, checkpoint_truncation},
          {"ckpt.forged_header", 500, checkpoint_forged_header},
          {"ckpt.forged_payload", 400, checkpoint_forged_payload},
          {"ckpt.state_json", 500, checkpoint_state_edit},
          {"ckpt.special_file", special_checkpoint_variants(), checkpoint_special_file},
          {"data.bytes", 150, data_bytes},
          {"data.idx", 350, data_idx},
          {"data.idx_gz", 300, data_idx_gz},
          {"data.cifar10", 200, data_cifar},
          {"data.special_file", special_data_variants(), data_special_file},
          {"data.npy", 150, data_npy},
          {"data.image_index", 100, data_image_index},
          {"config", 300, config_edit}};
}

}  // namespace spt::fuzz
