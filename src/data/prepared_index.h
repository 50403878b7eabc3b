// index.json of a prepared data set (the `prepared` format of data/dataset.h, written
// by data/prepared_writer.h): what tokens.bin holds and where each clip lies in it.
//   {"format": "spt-prepared", "version": 1, "modality": "audio" | "text",
//    "encoding": "mulaw8" (audio, data/mulaw.h) | "bytes" (text),
//    "sample_rate": Hz (audio; 0 for text),
//    "tokens_file": "tokens.bin", "total_tokens": n, "tokens_crc32": zlib CRC-32,
//    "splits": {"train": {"clips": k, "tokens": m}, "valid": ..., "test": ...},
//    "clips": [{"name": source, "offset": o, "length": m, "split": "train"}, ...]}
// Clips tile tokens.bin in order with no gap, all train clips first, then valid, then
// test, so every split is one contiguous range of the file.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace spt {

inline constexpr const char* kPreparedFormat = "spt-prepared";
inline constexpr int kPreparedVersion = 1;
inline constexpr const char* kPreparedIndexFile = "index.json";
inline constexpr const char* kPreparedTokensFile = "tokens.bin";
inline constexpr int kMaxSampleRate = 1000000;

struct PreparedClip {
  std::string name;   // the source file (relative to the source directory when there is one)
  std::string split;  // "train" | "valid" | "test"
  int64_t offset = 0;
  int64_t length = 0;
};

struct PreparedIndex {
  std::string modality;  // "audio" | "text"
  int sample_rate = 0;
  std::vector<PreparedClip> clips;
  int64_t total_tokens = 0;
  uint32_t tokens_crc32 = 0;
  std::string encoding() const { return modality == "audio" ? "mulaw8" : "bytes"; }
};

// The split's position 0, 1, 2 in the train, valid, test order; -1 for another name.
int split_rank(const std::string& split);

nlohmann::json to_json(const PreparedIndex& index);

// Parses and checks an index: format and version, modality/encoding/sample rate, every
// clip's fields, the tiling in split order and the totals. `where` (the file) starts
// every error message.
PreparedIndex parse_prepared_index(const nlohmann::json& json, const std::string& where);

}  // namespace spt
