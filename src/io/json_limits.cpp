#include "io/json_limits.h"

#include "core/error.h"

namespace spt {
namespace {

// Thrown out of the parser callback; turned into spt::Error by parse_json_limited.
struct TooDeep {};

}  // namespace

nlohmann::json parse_json_limited(const std::string& text, const std::string& what, const JsonKeyHook& on_key) {
  using Event = nlohmann::json::parse_event_t;
  const auto callback = [&](int depth, Event event, nlohmann::json& parsed) {
    // The depth of an opening bracket is that of its container; its content is one deeper.
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxJsonDepth) throw TooDeep{};
    if (event == Event::key && on_key) on_key(depth, parsed.get<std::string>());
    return true;
  };
  try {
    return nlohmann::json::parse(text, callback);
  } catch (const TooDeep&) {
    throw Error(message(what, ": JSON nested deeper than ", kMaxJsonDepth, " levels (not a file spt reads)"));
  } catch (const nlohmann::json::exception& e) {  // a syntax error, or a number beyond a double (1e400)
    throw Error(message(what, ": not valid JSON (", e.what(), ")"));
  }
}

std::string json_excerpt(const nlohmann::json& value, size_t limit) {
  std::string text = value.dump();
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

int64_t json_integer(const nlohmann::json& value, const std::string& key, int64_t min, int64_t max,
                     const std::string& where, const std::string& expected, const std::string& hint) {
  bool fits = false;
  if (value.is_number_unsigned()) fits = max >= 0 && value.get<uint64_t>() <= static_cast<uint64_t>(max) &&
                                         (min <= 0 || value.get<uint64_t>() >= static_cast<uint64_t>(min));
  else if (value.is_number_integer()) fits = value.get<int64_t>() >= min && value.get<int64_t>() <= max;
  if (fits) return value.get<int64_t>();
  const std::string wanted = !expected.empty() ? expected
                             : max == INT64_MAX ? message("an integer of at least ", min)
                                                : message("an integer in ", min, "..", max);
  throw Error(message(where, ": '", key, "' must be ", wanted, ", got ", json_excerpt(value),
                      hint.empty() ? "" : "; ", hint));
}

}  // namespace spt
