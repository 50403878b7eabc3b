#include "io/json_limits.h"

#include <algorithm>

#include "core/error.h"

namespace spt {
namespace {

constexpr int kMaxJsonDepth = 64;

// The deepest bracket nesting of `text`, counting only brackets outside strings. Stops
// counting past `limit` so the answer for a hostile file is found in one pass.
int nesting_depth(const std::string& text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char ch : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (ch == '\\') escaped = true;
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') in_string = true;
    else if (ch == '[' || ch == '{') deepest = std::max(deepest, ++depth);
    else if (ch == ']' || ch == '}') --depth;
    if (deepest > limit) break;
  }
  return deepest;
}

}  // namespace

nlohmann::json parse_json_limited(const std::string& text, const std::string& what) {
  const int depth = nesting_depth(text, kMaxJsonDepth);
  SPT_CHECK(depth <= kMaxJsonDepth, what, ": JSON nested more than ", kMaxJsonDepth,
            " levels deep; this is not a file spt wrote or accepts");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(message(what, ": not valid JSON (", e.what(), ")"));
  }
}

}  // namespace spt
