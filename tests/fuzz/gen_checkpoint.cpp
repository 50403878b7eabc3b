// Checkpoint mutations without forging: bit flips, truncation, state.json edits, special
// files. The tensor files are covered by CRC-32s and state.json must be refused on any
// change of meaning, so nearly everything here must be refused; eval and sample do not
// read optimizer.safetensors, so they may accept a damaged one (train --resume may not).
// They do read model_ema.safetensors (the weight average, used by default).
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "checkpoint_util.h"
#include "files.h"
#include "generators.h"
#include "json_values.h"

namespace spt::fuzz {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Target {
  std::string path, name;
  bool optimizer = false, state = false;
};

Target pick_file(const CheckpointCopy& ck, Rng& rng) {
  const uint64_t r = rng.below(100);
  if (r < 30) return {ck.model, "model.safetensors", false, false};
  if (r < 45) return {ck.ema, "model_ema.safetensors", false, false};
  if (r < 70) return {ck.optimizer, "optimizer.safetensors", true, false};
  return {ck.state, "state.json", false, true};
}

int64_t data_start(const Bytes& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | file[static_cast<size_t>(i)];
  return 8 + static_cast<int64_t>(n);
}

// The oracle of a damaged file: state.json that still means the same may go either way.
void add_commands_for(const Base& base, Case& c, const CheckpointCopy& ck, const Target& t, const Bytes& before,
                      const Bytes& after) {
  if (t.state && same_json(before, after)) return add_checkpoint_commands(base, c, ck, Expect::either, Expect::either);
  const std::vector<std::string> names = t.state ? changed_tokens(before, after) : std::vector<std::string>{};
  add_checkpoint_commands(base, c, ck, t.optimizer ? Expect::either : Expect::refuse, Expect::refuse, names);
}

// All paths to values in state.json: "step", "model/layers", "files/model.safetensors/crc32", ...
void collect_paths(const json& value, const std::string& prefix, std::vector<std::string>& out) {
  if (!value.is_object()) return;
  for (const auto& item : value.items()) {
    const std::string path = prefix.empty() ? item.key() : prefix + "/" + item.key();
    out.push_back(path);
    collect_paths(item.value(), path, out);
  }
}

json::json_pointer pointer(const std::string& path) {
  std::string escaped;
  for (char ch : path) escaped += ch == '~' ? std::string("~0") : std::string(1, ch);
  return json::json_pointer("/" + escaped);
}

std::string last_part(const std::string& path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

void checkpoint_bit_flips(const Base& base, Rng& rng, int64_t, Case& c) {
  const CheckpointCopy ck = copy_checkpoint(base, c);
  const Target t = pick_file(ck, rng);
  const Bytes before = read_file(t.path);
  Bytes after = before;
  const int64_t end = !t.state && rng.chance(50) ? data_start(before) : static_cast<int64_t>(before.size());
  const int bits = rng.chance(60) ? 1 : static_cast<int>(rng.range(2, 8));
  c.mutation = t.name + ": " + flip_bits(after, 0, end, bits, rng);
  write_file(t.path, after);
  add_commands_for(base, c, ck, t, before, after);
}

void checkpoint_truncation(const Base& base, Rng& rng, int64_t, Case& c) {
  const CheckpointCopy ck = copy_checkpoint(base, c);
  const Target t = pick_file(ck, rng);
  const Bytes before = read_file(t.path);
  const int64_t size = static_cast<int64_t>(before.size());
  const int64_t header_end = t.state ? size / 2 : data_start(before);
  const std::vector<int64_t> lengths = {0, 4, 8, header_end - 1, header_end, size - 1, size - 4,
                                        rng.range(0, size - 1), rng.range(0, size - 1)};
  const int64_t length = std::min(size - 1, std::max<int64_t>(0, rng.pick(lengths)));
  const Bytes after(before.begin(), before.begin() + length);
  write_file(t.path, after);
  const bool forged = !t.state && rng.chance(50);
  if (forged) forge_state(ck);
  c.mutation = t.name + ": truncated from " + std::to_string(size) + " to " + std::to_string(length) + " bytes" +
               (forged ? " (state.json forged to match)" : "");
  add_commands_for(base, c, ck, t, before, after);
}

namespace {

// One edit of the field at `path`; returns its description, fills `raw` and whether the
// edit keeps the meaning (reformatting) or only removes the optimizer from the listing.
struct StateEdit {
  std::string what;
  bool same_meaning = false, drops_optimizer = false;
  std::string value;  // the new value's text, which an error may quote instead of the key

  StateEdit(std::string what_, bool same_meaning_ = false, bool drops_optimizer_ = false, std::string value_ = "")
      : what(std::move(what_)), same_meaning(same_meaning_), drops_optimizer(drops_optimizer_),
        value(std::move(value_)) {}
};

StateEdit edit_state_field(json& state, const std::string& path, Rng& rng, std::vector<std::string>& raw) {
  const json::json_pointer at = pointer(path);
  const std::string key = last_part(path);
  const uint64_t r = rng.below(100);
  if (r < 22) {
    state.at(at.parent_pointer()).erase(key);
    // Without its checksum, state.json reads as one an older spt wrote (accepted with a
    // note): nothing it says has changed.
    return {"deleted", path == "state_crc32", path == "files/optimizer.safetensors"};
  }
  if (r < 30) {
    state.at(at.parent_pointer())["unknown_key"] = 1;
    return {"added unknown key 'unknown_key' beside it"};
  }
  const ValueKind kinds[] = {ValueKind::ill_typed, ValueKind::out_of_range, ValueKind::huge, ValueKind::valid,
                             ValueKind::deep};
  const ValueKind kind = kinds[rng.below(r < 90 ? 4 : 5)];
  ValueEdit edit = value_for(kind, key, state.at(at), rng);
  if (edit.raw.empty()) edit = value_for(ValueKind::ill_typed, key, state.at(at), rng);
  raw.push_back(edit.raw);
  state.at(at) = raw_marker(0);
  return {std::string(kind_name(edit.kind)) + " value " + (edit.raw.size() > 40 ? "[[[...]]]" : edit.raw), false,
          false, edit.raw.size() <= 40 ? edit.raw : ""};
}

}  // namespace

void checkpoint_state_edit(const Base& base, Rng& rng, int64_t, Case& c) {
  const CheckpointCopy ck = copy_checkpoint(base, c);
  const Bytes before = read_file(ck.state);
  json state = json::parse(before.begin(), before.end());
  std::vector<std::string> paths;
  collect_paths(state, "", paths);
  std::vector<std::string> raw;
  if (rng.chance(6)) {
    const int indent = rng.chance(50) ? -1 : 4;
    write_text(ck.state, state.dump(indent) + (rng.chance(50) ? "\n\n  " : ""));
    c.mutation = "state.json: reformatted (indent " + std::to_string(indent) + "), same content";
    return add_checkpoint_commands(base, c, ck, Expect::either, Expect::either);
  }
  const std::string path = rng.pick(paths);
  const StateEdit edit = edit_state_field(state, path, rng, raw);
  write_text(ck.state, dump_with_raw(state, raw, 2) + "\n");
  c.mutation = "state.json: '" + path + "' " + edit.what;
  if (edit.same_meaning) return add_checkpoint_commands(base, c, ck, Expect::either, Expect::either);
  add_checkpoint_commands(base, c, ck, edit.drops_optimizer ? Expect::either : Expect::refuse, Expect::refuse,
                          {last_part(path), edit.value.empty() ? last_part(path) : edit.value});
}

namespace {

void make_fifo(const std::string& path) {
  remove_tree(path);
  mkfifo(path.c_str(), 0600);
}

void make_sparse(const std::string& path, int64_t size) {
  if (truncate(path.c_str(), size) != 0) throw std::runtime_error("cannot extend " + path);
}

void replace_with_symlink(const std::string& path, const std::string& target) {
  remove_tree(path);
  fs::create_symlink(target, path);
}

}  // namespace

int special_checkpoint_variants() { return 15; }

void checkpoint_special_file(const Base& base, Rng& rng, int64_t index, Case& c) {
  CheckpointCopy ck = copy_checkpoint(base, c);
  const int64_t gib3 = int64_t{3} << 30;
  Expect reading = Expect::refuse;
  switch (index % special_checkpoint_variants()) {
    case 0: make_fifo(ck.state); c.mutation = "state.json is a FIFO"; break;
    case 1: remove_tree(ck.state); fs::create_directory(ck.state); c.mutation = "state.json is a directory"; break;
    case 2: replace_with_symlink(ck.state, "/dev/zero"); c.mutation = "state.json -> /dev/zero"; break;
    case 3: write_text(ck.state, ""); c.mutation = "state.json is empty"; break;
    case 4: make_sparse(ck.state, gib3); c.mutation = "state.json followed by 3 GiB of zero bytes (sparse)"; break;
    case 5: make_fifo(ck.model); c.mutation = "model.safetensors is a FIFO"; break;
    case 6: remove_tree(ck.model); fs::create_directory(ck.model); c.mutation = "model.safetensors is a directory"; break;
    case 7: replace_with_symlink(ck.model, "/dev/zero"); c.mutation = "model.safetensors -> /dev/zero"; break;
    case 8: make_sparse(ck.model, gib3); c.mutation = "model.safetensors extended to 3 GiB (sparse)"; break;
    case 9: remove_tree(ck.dir); write_text(ck.dir, "x"); c.mutation = "checkpoint is a regular file"; break;
    case 10: {
      Bytes model = read_file(ck.model);
      c.mutation = "checkpoint missing, checkpoint.old with model.safetensors " + flip_bits(model, 0, 8, 1, rng);
      write_file(ck.model, model);
      fs::rename(ck.dir, ck.dir + ".old");
      break;
    }
    case 11: remove_tree(ck.optimizer); reading = Expect::either; c.mutation = "optimizer.safetensors deleted"; break;
    case 12: make_fifo(ck.optimizer); reading = Expect::either; c.mutation = "optimizer.safetensors is a FIFO"; break;
    case 13: remove_tree(ck.ema); c.mutation = "model_ema.safetensors deleted"; break;
    default: replace_with_symlink(ck.state, ck.model); c.mutation = "state.json -> model.safetensors"; break;
  }
  add_checkpoint_commands(base, c, ck, reading, Expect::refuse);
}

}  // namespace spt::fuzz
