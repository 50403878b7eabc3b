// Data sets as token sequences (V = 256): text and audio bytes as one stream, images
// as records of rows * cols * channels pixels in raster order with the channel
// fastest (the paper's 32x32x3). Formats:
//   bytes    any file; split 90/5/5 into train/valid/test as enwik8 is
//   idx      MNIST / Fashion-MNIST: a directory holding train-images-idx3-ubyte and
//            t10k-images-idx3-ubyte (each plain or .gz); the last 5,000 training
//            images are the validation split, t10k is the test split
//   cifar10  a directory holding data_batch_1..5.bin and test_batch.bin (1 label byte
//            then 3072 bytes, channel-major); the last 5,000 training images are the
//            validation split
// Position coordinates follow from the position within a window (docs/MODEL.md):
// images use pos_sizes {rows, cols, channels}, text {ceil(T / l), l}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace spt {

struct TokenSplit {
  std::string name;             // "train" | "valid" | "test"
  std::vector<uint8_t> tokens;  // stream: (n); records: (records, record_size)
  int64_t record_size = 0;      // tokens per image; 0 for a stream
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  int64_t records() const { return record_size > 0 ? size() / record_size : 0; }
};

struct Dataset {
  std::string format;  // bytes | idx | cifar10
  std::string path;
  int rows = 0, cols = 0, channels = 0;  // images; 0 for a byte stream
  TokenSplit train, valid, test;
  bool images() const { return rows > 0; }
  // "train", "valid" or "test"; an unknown name is an error listing the three.
  const TokenSplit& split(const std::string& name) const;
};

// Reads a data set; a missing, truncated or wrong-format file is an error naming the
// file and what was expected.
Dataset load_dataset(const std::string& format, const std::string& path);

// Checks that a model reads this data: images need ctx == rows * cols * channels and
// pos_sizes {rows, cols, channels}; every split of a stream must hold at least ctx
// tokens. The error names the value and the flag that fixes it.
void check_model_fits(const Dataset& data, const ModelConfig& model);

// The B training windows of draw number `draw` (one per micro-batch), a pure function
// of (seed, draw): a uniformly random offset into a stream, or a uniformly random
// record. tokens: (B, T).
void training_batch(const TokenSplit& split, int64_t T, int B, uint64_t seed, int64_t draw, uint8_t* tokens);

// Evaluation scores every token of a split exactly once. Window w holds tokens
// [start, start + T) and scores positions p >= score_from within it (the first token
// of a window is predicted without context). A stream is cut into consecutive windows;
// its last window ends at the end of the split and scores only the tokens the previous
// window did not. Records are one window each.
struct EvalWindow {
  int64_t start = 0;
  int64_t score_from = 0;
};
std::vector<EvalWindow> eval_windows(const TokenSplit& split, int64_t T);

}  // namespace spt
