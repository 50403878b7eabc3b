// JSON from files spt does not trust (state.json, safetensors headers, --config files):
// nesting deeper than a real file needs is refused while parsing, so a forged
// `[[[[...]]]]` cannot exhaust the stack in code that walks or prints the value later.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace spt {

// Deeper than any file spt writes or reads (a safetensors header nests 3 levels).
inline constexpr int kMaxJsonDepth = 64;

// Called for every object key with its nesting depth (1 for the top-level keys).
using JsonKeyHook = std::function<void(int depth, const std::string& key)>;

// Parses `text`; invalid JSON or nesting beyond kMaxJsonDepth throws spt::Error
// "<what>: not valid JSON (...)" / "<what>: JSON nested deeper than 64 levels".
nlohmann::json parse_json_limited(const std::string& text, const std::string& what,
                                  const JsonKeyHook& on_key = nullptr);

// A value shortened for an error message (at most `limit` characters of its dump).
std::string json_excerpt(const nlohmann::json& value, size_t limit = 60);

// The one strict integer reader for JSON spt does not trust. nlohmann converts between
// number types and bool without a word (2.5 read as an integer is 2, true is 1,
// 4294967298 as an int is 2), so `value` (the value of `key` in `where`, a file or a
// section of one) must be a JSON integer within [min, max]; anything else throws
// "<where>: '<key>' must be <expected>, got <value excerpt>[; <hint>]", where
// `expected` defaults to "an integer in min..max" (or "of at least min").
int64_t json_integer(const nlohmann::json& value, const std::string& key, int64_t min, int64_t max,
                     const std::string& where, const std::string& expected = {}, const std::string& hint = {});

}  // namespace spt
