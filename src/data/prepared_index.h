// index.json of a prepared data set (the `prepared` format of data/dataset.h, written
// by data/prepared_writer.h): what tokens.bin holds and where each clip lies in it.
//   {"format": "spt-prepared", "version": 1, "modality": "audio" | "text" | "image",
//    "encoding": "mulaw8" (audio, data/mulaw.h) | "bytes" (text) | "pixels8" (image),
//    "sample_rate": Hz (audio; 0 for text and images),
//    "tokens_file": "tokens.bin", "total_tokens": n, "tokens_crc32": zlib CRC-32,
//   audio and text:
//    "splits": {"train": {"clips": k, "tokens": m}, "valid": ..., "test": ...},
//    "clips": [{"name": source, "offset": o, "length": m, "split": "train"}, ...]}
//   images (all of one shape, so no list: 1.28M images keep the index small):
//    "image": {"height": h, "width": w, "channels": 1 | 3},
//    "splits": {"train": {"images": k, "tokens": k * h * w * c}, "valid": ..., "test": ...}}
// Clips (images) tile tokens.bin in order with no gap, all train clips first, then
// valid, then test, so every split is one contiguous range of the file. An image is
// h * w * c tokens in raster order with the channel fastest (data/dataset.h).
// Image sets came after version 1 but need no new version: a reader without them
// refuses the modality "image" by name.
#pragma once

#include <array>
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
// Bounds on a prepared image: a side of at most 65,535 pixels and at most 2^26 tokens
// (64 MiB) per image, far beyond any context a model trains on.
inline constexpr int kMaxImageSide = 65535;
inline constexpr int64_t kMaxImageTokens = int64_t{1} << 26;

struct PreparedClip {
  std::string name;   // the source file (relative to the source directory when there is one)
  std::string split;  // "train" | "valid" | "test"
  int64_t offset = 0;
  int64_t length = 0;
};

struct ImageShape {
  int height = 0, width = 0, channels = 0;
  int64_t tokens() const { return int64_t{height} * width * channels; }
  bool operator==(const ImageShape&) const = default;
};

struct PreparedIndex {
  std::string modality;  // "audio" | "text" | "image"
  int sample_rate = 0;
  std::vector<PreparedClip> clips;     // audio and text
  ImageShape image;                    // images
  std::array<int64_t, 3> images = {};  // images per split in train, valid, test order
  int64_t total_tokens = 0;
  uint32_t tokens_crc32 = 0;
  std::string encoding() const;
};

// The split's position 0, 1, 2 in the train, valid, test order; -1 for another name.
int split_rank(const std::string& split);
// "train", "valid", "test" for 0, 1, 2.
const char* split_name(int rank);

// Checks a shape against the bounds above; `where` starts the error.
void check_image_shape(const ImageShape& shape, const std::string& where);

nlohmann::json to_json(const PreparedIndex& index);

// Parses and checks an index: format and version, modality/encoding/sample rate, every
// clip's fields (or the image shape and counts), the tiling in split order and the
// totals. `where` (the file) starts every error message.
PreparedIndex parse_prepared_index(const nlohmann::json& json, const std::string& where);

}  // namespace spt
