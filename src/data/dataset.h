// Data sets as token sequences (V = 256): text and audio bytes as one stream, images
// as records of rows * cols * channels pixels in raster order with the channel
// fastest (the paper's 32x32x3): token (row * cols + col) * channels + ch. Formats:
//   bytes    any file, read in one go; split as enwik8 is: train = [0, floor(0.9 n)),
//            valid = [floor(0.9 n), floor(0.95 n)), test = the rest. An empty file is
//            an error.
//   prepared a directory written by `spt prepare` (docs/DATA.md): tokens.bin holds
//            every clip's tokens (audio: 8-bit mu-law, data/mulaw.h; text: bytes)
//            or every image's pixels, ordered train, valid, test; index.json names
//            each clip, its offset, length and split (images: the shape and the
//            count per split), the sizes and tokens.bin's CRC-32. tokens.bin is
//            memory-mapped, verified against the index first; no audio or image
//            library is needed to read it. An image set gives the same Dataset as
//            the IDX / CIFAR-10 loaders (rows, cols, channels; records), with
//            modality "image" and its splits as views of the mapping.
//   idx      MNIST / Fashion-MNIST: a directory holding train-images-idx3-ubyte and
//            t10k-images-idx3-ubyte (each plain or .gz; the plain one wins when both
//            exist; labels are not read); channels = 1; t10k is the test split
//   cifar10  a directory holding data_batch_1..5.bin and test_batch.bin (1 label byte
//            then 3072 bytes, channel-major; labels are dropped), or the directory
//            holding cifar-10-batches-bin/
// Images: the last min(5000, N / 12) of the N training images are the validation
// split (5,000 for the real 60,000 / 50,000-image sets; 1/12 keeps small files
// usable); fewer than 12 training images is an error.
// Position coordinates follow from the position within a window (docs/MODEL.md):
// images use pos_sizes {rows, cols, channels}, text {ceil(T / l), l}.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"

namespace spt {

// One recording (or text file) of a prepared set: tokens [start, start + length) of
// its split.
struct ClipRange {
  int64_t start = 0;
  int64_t length = 0;
};

struct TokenSplit {
  std::string name;             // "train" | "valid" | "test"
  std::vector<uint8_t> tokens;  // stream: (n); records: (records, record_size); empty for a view
  int64_t record_size = 0;      // tokens per image; 0 for a stream
  // Clips tiling the stream in order; empty: the stream is one sequence (bytes).
  // Training and evaluation windows never cross a clip boundary.
  std::vector<ClipRange> clips = {};
  // Prepared sets: the split is a read-only view of view_size tokens at `view` inside
  // a mapping that view_owner keeps alive, and `tokens` stays empty.
  std::shared_ptr<const void> view_owner = nullptr;
  const uint8_t* view = nullptr;
  int64_t view_size = 0;

  const uint8_t* data() const { return view != nullptr ? view : tokens.data(); }
  int64_t size() const { return view != nullptr ? view_size : static_cast<int64_t>(tokens.size()); }
  int64_t records() const { return record_size > 0 ? size() / record_size : 0; }
};

struct Dataset {
  std::string format;  // bytes | idx | cifar10 | prepared
  std::string path;
  int rows = 0, cols = 0, channels = 0;  // images; 0 for a byte stream
  std::string modality;  // prepared sets: "audio" | "text" | "image"; empty otherwise
  int sample_rate = 0;   // prepared audio: samples per second of the tokens; 0 otherwise
  TokenSplit train, valid, test;
  bool images() const { return rows > 0; }
  // "train", "valid" or "test"; an unknown name is an error listing the three.
  const TokenSplit& split(const std::string& name) const;
};

// Reads a data set; a missing, truncated or wrong-format file is an error naming the
// file and what was expected.
Dataset load_dataset(const std::string& format, const std::string& path);

// True when `path` is a directory holding index.json (a set written by `spt prepare`).
bool is_prepared_directory(const std::string& path);

// Checks that a model reads this data: images need ctx == rows * cols * channels and
// pos_sizes {rows, cols, channels}; every split of a stream must hold at least ctx
// tokens, and with clips at least one clip of ctx tokens; a model with a sample rate
// reads audio of that rate only. The error names the value and the flag that fixes it.
void check_model_fits(const Dataset& data, const ModelConfig& model);

// Training on audio: the model takes the data's sample rate (kept in its checkpoints);
// a model that already has a different one is an error.
void adopt_sample_rate(const Dataset& data, ModelConfig& model);

// The B training windows of draw number `draw` (one per micro-batch), a pure function
// of (seed, draw): window b is choice uniform_int(rng_key(seed, 0x6461746100, draw), b,
// n) (core/rng.h) among n choices: the n = size - T + 1 offsets of a stream; with clips
// the window starts inside one clip, counted clip by clip (clip 0's len0 - T + 1
// starts, then clip 1's, ...; clips shorter than T give none); for images a record
// among the n = records() (then T must equal record_size). tokens: (B, T).
void training_batch(const TokenSplit& split, int64_t T, int B, uint64_t seed, int64_t draw, uint8_t* tokens);

// Evaluation scores every token of a split exactly once. Window w holds tokens
// [start, start + T) and scores positions p >= score_from within it (the first token
// of a window is predicted without context). A stream is cut into consecutive windows;
// its last window ends at the end of the split and scores only the tokens the previous
// window did not: windows start at 0, T, 2T, ... while start + T <= n, each with
// score_from 0, then, if n % T != 0, one at n - T with score_from T - n % T. A stream
// shorter than T is an error. Records are one window each (T must equal record_size).
// With clips, each clip of at least T tokens is cut by the stream rule on its own
// (windows at its start, start + T, ..., the last ending at the clip's end), so no
// window crosses a clip; clips shorter than T are not scored (short_clip_tokens counts
// their tokens, which evaluation reports), and a split whose clips are all shorter
// than T is an error.
struct EvalWindow {
  int64_t start = 0;
  int64_t score_from = 0;
};
std::vector<EvalWindow> eval_windows(const TokenSplit& split, int64_t T);

// Tokens of the clips shorter than T, which eval_windows leaves unscored (0 without clips).
int64_t short_clip_tokens(const TokenSplit& split, int64_t T);

}  // namespace spt
