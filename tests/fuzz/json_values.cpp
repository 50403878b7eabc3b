#include "json_values.h"

#include <map>
#include <set>

namespace spt::fuzz {
namespace {

using List = std::vector<std::string>;

// Fields spt holds in 64 bits (TrainConfig's step counts and seed, state.json's counters
// and sizes): 4294967298 is a value they hold exactly, not one that wraps, and a negative
// one is a range error that --steps may override; values beyond 64 bits are ill-typed.
bool is_64_bit(const std::string& key) {
  static const std::set<std::string> keys = {"steps", "warmup", "eval_every", "eval_batches", "save_every", "seed",
                                             "step", "tokens_seen", "clean_steps", "bytes"};
  return keys.count(key) != 0;
}

List ill_typed(const std::string& key, const nlohmann::json& original) {
  if (original.is_boolean()) return {"1", "\"true\"", "null", "0", "[]"};
  if (original.is_string()) return {"1", "null", "[\"strided\"]", "true", "{}"};
  if (original.is_array()) return {"64", "\"8,8\"", "[8.5, 8]", "[\"8\", 8]", "[[8], 8]", "null", "{}"};
  if (original.is_number_float()) return {"\"0.1\"", "true", "null", "[1]", "{}"};
  // Integers: a fraction, a string, other types, and values that wrap when cast to 32 bits.
  if (is_64_bit(key)) return {"\"2\"", "2.5", "true", "null", "[]", "{}", "18446744073709551616",
                            "-9223372036854775809"};
  return {"\"2\"", "2.5", "true", "null", "[]", "{}", "4294967298", "-4294967294"};
}

const std::map<std::string, List>& out_of_range_table() {
  static const std::map<std::string, List> table = {
      {"layers", {"0", "-1"}}, {"width", {"0", "-32", "33"}}, {"heads", {"0", "-2", "3"}},
      {"ctx", {"0", "-64"}}, {"ff_ratio", {"0", "-1.0", "1e400", "-1e400"}}, {"dropout", {"-0.1", "1.0", "1e400"}},
      {"stride", {"0", "-8"}}, {"pattern", {"\"bogus\"", "\"\""}}, {"mode", {"\"bogus\""}},
      {"pos_sizes", {"[]", "[0, 8]", "[4, 4]", "[-8, -8]"}}, {"batch", {"0", "-1"}}, {"accumulate", {"0", "-1"}},
      {"lr", {"0", "-0.1", "1.0", "1e400"}}, {"warmup", {"-1"}}, {"weight_decay", {"-1", "1e400"}},
      {"beta1", {"1.0", "-0.1", "1e400"}}, {"beta2", {"1.0", "1e400"}}, {"eps", {"0", "-1e-8", "1e400"}},
      {"clip", {"-1", "1e400"}}, {"seed", {"-1", "18446744073709551616"}}, {"eval_every", {"-1"}},
      {"save_every", {"-1"}}, {"summary", {"-1"}}, {"summary_blocks", {"-1"}},
      {"step", {"-1"}}, {"tokens_seen", {"-1"}}, {"loss_scale", {"0", "-1", "1e400"}}, {"clean_steps", {"-1"}},
      {"bytes", {"-1", "0"}}, {"crc32", {"-1", "4294967296"}}, {"last_valid_bits", {"-1", "1e400"}}};
  return table;
}

const std::map<std::string, List>& huge_table() {
  static const std::map<std::string, List> table = {
      {"layers", {"40000", "2147483647"}}, {"width", {"65536", "2147483646"}}, {"ctx", {"1073741824", "2147483647"}},
      {"ff_ratio", {"1000000.0"}}, {"pos_sizes", {"[2147483647, 8]", "[65536, 65536]"}},
      {"batch", {"2147483647", "1000000"}}, {"stride", {"2147483647"}}, {"summary_blocks", {"2147483647"}},
      {"heads", {"2147483647"}}, {"bytes", {"4611686018427387904"}}, {"step", {"9223372036854775807"}}};
  return table;
}

// Valid alternatives for the tiny preset's model (width 32, 2 heads, ctx 64, strided l 8).
const std::map<std::string, List>& valid_table() {
  static const std::map<std::string, List> table = {
      {"layers", {"1", "3"}}, {"width", {"64"}}, {"heads", {"4", "1"}}, {"ctx", {"32"}},
      {"ff_ratio", {"2.0", "2"}}, {"half_qk", {"true"}}, {"pattern", {"\"dense\""}}, {"stride", {"4"}},
      {"dropout", {"0.1"}}, {"mode", {"\"interleaved\""}}, {"batch", {"2"}}, {"accumulate", {"2"}},
      {"lr", {"0.004"}}, {"warmup", {"0", "2"}}, {"weight_decay", {"0", "0.1"}}, {"beta1", {"0.8"}},
      {"beta2", {"0.99"}}, {"eps", {"1e-6"}}, {"clip", {"0", "0.5"}}, {"seed", {"7"}}, {"recompute", {"false"}},
      {"eval_every", {"0"}}, {"save_every", {"0", "1"}},
      {"step", {"3"}}, {"tokens_seen", {"1024"}}, {"data_path", {"\"/nonexistent/data.txt\""}},
      {"data_format", {"\"idx\""}}, {"loss_scale", {"2.0"}}, {"last_valid_bits", {"1.5", "null"}}};
  return table;
}

std::string pick_from(const std::map<std::string, List>& table, const std::string& key, Rng& rng) {
  const auto found = table.find(key);
  return found == table.end() ? std::string() : rng.pick(found->second);
}

}  // namespace

const char* kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::ill_typed: return "ill-typed";
    case ValueKind::out_of_range: return "out of range";
    case ValueKind::huge: return "huge";
    case ValueKind::valid: return "another valid value";
    case ValueKind::deep: return "100,000-deep array";
  }
  return "?";
}

ValueEdit value_for(ValueKind kind, const std::string& key, const nlohmann::json& original, Rng& rng) {
  switch (kind) {
    case ValueKind::ill_typed: return {kind, rng.pick(ill_typed(key, original))};
    case ValueKind::out_of_range: return {kind, pick_from(out_of_range_table(), key, rng)};
    case ValueKind::huge: return {kind, pick_from(huge_table(), key, rng)};
    case ValueKind::valid: return {kind, pick_from(valid_table(), key, rng)};
    case ValueKind::deep: return {kind, std::string(100000, '[') + std::string(100000, ']')};
  }
  return {kind, ""};
}

}  // namespace spt::fuzz
