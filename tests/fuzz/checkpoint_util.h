// Checkpoint surgery shared by the checkpoint generators: a copy of the base checkpoint
// per case, safetensors files taken apart and put back together, and forging (making
// state.json's sizes, CRC-32s and own checksum match edited files, as a tool would).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "base.h"
#include "fuzz_case.h"

namespace spt::fuzz {

struct CheckpointCopy {
  std::string run, dir, model, optimizer, ema, state;  // ema: model_ema.safetensors (the base run has --ema)
};

// Copies the base run into case.dir/run.
CheckpointCopy copy_checkpoint(const Base& base, const Case& c);

// eval, sample and train --resume on the copy; `names` adds what a refusal may name
// besides the case directory.
void add_checkpoint_commands(const Base& base, Case& c, const CheckpointCopy& ck, Expect eval_and_sample,
                             Expect resume, const std::vector<std::string>& names = {});

struct Safetensors {
  nlohmann::json header;
  Bytes data;  // the data section
  int64_t data_start = 0;
};
Safetensors parse_safetensors(const Bytes& file);
// `header_text` is written as is, padded with spaces to a multiple of 8 bytes.
Bytes build_safetensors(const std::string& header_text, const Bytes& data);

// Rewrites state.json's "files" sizes/CRC-32s (and its "state_crc32" when present) to
// match the tensor files as they are now.
void forge_state(const CheckpointCopy& ck);

// JSON text of `json` with every string value "@@RAW<k>@@" replaced by raw[k]: for values
// nlohmann cannot hold (a 100,000-deep array, 2^64, a bare word).
std::string dump_with_raw(const nlohmann::json& json, const std::vector<std::string>& raw, int indent);
std::string raw_marker(size_t k);
std::string deep_array(int depth);

// Equal after parsing (whitespace, key order and number spelling do not count); false when
// either does not parse.
bool same_json(const Bytes& a, const Bytes& b);

}  // namespace spt::fuzz
