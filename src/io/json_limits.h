// JSON from untrusted files with a bounded nesting depth: nlohmann's DOM and its dump()
// recurse once per level, so a file of 100,000 nested brackets would overflow the stack.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace spt {

// Parses `text`; throws spt::Error naming `what` when it is not valid JSON or nests
// arrays and objects more than 64 levels deep (spt's own files use 3). The depth is
// checked before any value is built.
nlohmann::json parse_json_limited(const std::string& text, const std::string& what);

}  // namespace spt
