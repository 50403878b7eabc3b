// Replacement values for one field of a config ("model" / "train" of --config or
// state.json), as raw JSON text, sorted by what a correct spt must do with them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fuzz_case.h"

namespace spt::fuzz {

enum class ValueKind { ill_typed, out_of_range, huge, valid, deep };

struct ValueEdit {
  ValueKind kind;
  std::string raw;  // JSON text of the new value
};

const char* kind_name(ValueKind kind);
// A value of `kind` for the field `key` whose valid value is `original`; kind valid may
// give nothing for a field without a known valid alternative (then raw is empty).
ValueEdit value_for(ValueKind kind, const std::string& key, const nlohmann::json& original, Rng& rng);

}  // namespace spt::fuzz
