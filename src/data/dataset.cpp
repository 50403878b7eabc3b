#include "data/dataset.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "data/formats.h"

namespace spt {
namespace {

constexpr uint64_t kDataStream = 0x6461746100;  // "data\0": the rng stream of training offsets

std::string sizes_text(const std::vector<int>& sizes) {
  std::ostringstream text;
  for (size_t k = 0; k < sizes.size(); ++k) text << (k ? "," : "") << sizes[k];
  return text.str();
}

int64_t longest_clip(const TokenSplit& split) {
  int64_t longest = 0;
  for (const ClipRange& clip : split.clips) longest = std::max(longest, clip.length);
  return longest;
}

// Training window starts of each clip: max(0, length - T + 1).
int64_t clip_starts(const ClipRange& clip, int64_t T) { return clip.length >= T ? clip.length - T + 1 : 0; }

void check_has_window(const TokenSplit& split, int64_t T, const std::string& source) {
  SPT_CHECK(split.size() >= T, "the ", split.name, " split", source, " holds ", split.size(), " tokens, fewer than ",
            "ctx ", T, "; use a smaller --ctx or more data");
  SPT_CHECK(split.clips.empty() || longest_clip(split) >= T, "every clip of the ", split.name, " split", source,
            " is shorter than ctx ", T, " (the longest holds ", longest_clip(split),
            " tokens); use a smaller --ctx or longer recordings");
}

// The stream rule of eval_windows over tokens [first, first + n), n >= T.
void append_stream_windows(int64_t first, int64_t n, int64_t T, std::vector<EvalWindow>& windows) {
  for (int64_t start = 0; start + T <= n; start += T) windows.push_back({first + start, 0});
  // The remainder is scored by a window ending at the stream's end, so that it still
  // sees T - 1 tokens of context rather than few or none.
  if (n % T != 0) windows.push_back({first + n - T, T - n % T});
}

// The start of choice `choice` among the clip-aware window starts (see training_batch).
int64_t clip_window_start(const TokenSplit& split, int64_t T, int64_t choice) {
  for (const ClipRange& clip : split.clips) {
    const int64_t starts = clip_starts(clip, T);
    if (choice < starts) return clip.start + choice;
    choice -= starts;
  }
  throw Error(message("window choice beyond the clips of the ", split.name, " split"));
}

}  // namespace

const TokenSplit& Dataset::split(const std::string& name) const {
  if (name == "train") return train;
  if (name == "valid") return valid;
  if (name == "test") return test;
  throw Error(message("unknown split '", name, "'; expected train, valid or test"));
}

int64_t validation_images(int64_t training_images) {
  return std::min<int64_t>(5000, training_images / 12);
}

void hold_out_validation(TokenSplit& train, TokenSplit& valid, const std::string& source) {
  const int64_t held = validation_images(train.records());
  SPT_CHECK(held >= 1, "'", source, "' holds ", train.records(),
            " training images; at least 12 are needed to hold out 1/12 for validation");
  const auto cut = train.tokens.begin() + (train.records() - held) * train.record_size;
  valid.tokens.assign(cut, train.tokens.end());
  train.tokens.erase(cut, train.tokens.end());
}

Dataset load_dataset(const std::string& format, const std::string& path) {
  SPT_CHECK(!path.empty(), "no data path given for format '", format, "'; use --data PATH");
  if (format == "bytes") return load_bytes(path);
  if (format == "idx") return load_idx(path);
  if (format == "cifar10") return load_cifar10(path);
  if (format == "prepared") return load_prepared(path);
  throw Error(message("unknown data format '", format, "'; expected bytes, idx, cifar10 or prepared (.npz arrays, ",
                      "image folders and audio are read after `spt prepare SOURCE --out DIR`)"));
}

bool is_prepared_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) &&
         std::filesystem::is_regular_file(std::filesystem::path(path) / "index.json", ec);
}

void adopt_sample_rate(const Dataset& data, ModelConfig& model) {
  if (data.sample_rate <= 0) return;
  SPT_CHECK(model.sample_rate == 0 || model.sample_rate == data.sample_rate, "the model's sample_rate ",
            model.sample_rate, " differs from the ", data.sample_rate, " Hz audio of '", data.path,
            "'; drop sample_rate from the config (training takes the data's) or prepare the data at ",
            model.sample_rate, " Hz (spt prepare --sample-rate ", model.sample_rate, ")");
  model.sample_rate = data.sample_rate;
}

void check_model_fits(const Dataset& data, const ModelConfig& model) {
  if (data.images()) {
    const int64_t pixels = int64_t{data.rows} * data.cols * data.channels;
    const std::string shape = message(data.rows, "x", data.cols, "x", data.channels);
    SPT_CHECK(model.ctx == pixels, "model ctx ", model.ctx, " does not match the ", shape, " images of '", data.path,
              "' (", pixels, " tokens each); use --ctx ", pixels, " or the right preset");
    const std::vector<int> wanted = {data.rows, data.cols, data.channels};
    SPT_CHECK(model.pos_sizes == wanted, "model pos_sizes ", sizes_text(model.pos_sizes), " do not match the ",
              shape, " images of '", data.path, "'; use --pos-sizes ", sizes_text(wanted));
    SPT_CHECK(model.sample_rate == 0, "a model of ", model.sample_rate, " Hz audio cannot read the images of '",
              data.path, "'");
    return;
  }
  SPT_CHECK(model.sample_rate == 0 || data.sample_rate == 0 || model.sample_rate == data.sample_rate,
            "the model was trained on ", model.sample_rate, " Hz audio but '", data.path, "' holds ",
            data.sample_rate, " Hz audio; prepare the data at ", model.sample_rate, " Hz (spt prepare --sample-rate)");
  for (const TokenSplit* split : {&data.train, &data.valid, &data.test})
    check_has_window(*split, model.ctx, " of '" + data.path + "'");
}

void training_batch(const TokenSplit& split, int64_t T, int B, uint64_t seed, int64_t draw, uint8_t* tokens) {
  SPT_CHECK(T >= 1, "training window length T = ", T, " must be >= 1");
  SPT_CHECK(B >= 1, "batch size B = ", B, " must be >= 1");
  int64_t choices = 0;  // stream offsets or records
  if (split.record_size > 0) {
    SPT_CHECK(T == split.record_size, "window length ", T, " differs from the ", split.record_size,
              "-token images of the ", split.name, " split; use --ctx ", split.record_size);
    choices = split.records();
    SPT_CHECK(choices >= 1, "the ", split.name, " split holds no images");
  } else if (split.clips.empty()) {
    check_has_window(split, T, "");
    choices = split.size() - T + 1;
  } else {
    check_has_window(split, T, "");
    for (const ClipRange& clip : split.clips) choices += clip_starts(clip, T);
  }
  const uint64_t key = rng_key(seed, kDataStream, static_cast<uint64_t>(draw));
  for (int b = 0; b < B; ++b) {
    const int64_t choice = static_cast<int64_t>(uniform_int(key, static_cast<uint64_t>(b), static_cast<uint64_t>(choices)));
    int64_t start = choice;
    if (split.record_size > 0) start = choice * split.record_size;
    else if (!split.clips.empty()) start = clip_window_start(split, T, choice);
    std::memcpy(tokens + int64_t{b} * T, split.data() + start, static_cast<size_t>(T));
  }
}

std::vector<EvalWindow> eval_windows(const TokenSplit& split, int64_t T) {
  SPT_CHECK(T >= 1, "evaluation window length T = ", T, " must be >= 1");
  std::vector<EvalWindow> windows;
  if (split.record_size > 0) {
    SPT_CHECK(T == split.record_size, "window length ", T, " differs from the ", split.record_size,
              "-token images of the ", split.name, " split; use --ctx ", split.record_size);
    windows.reserve(static_cast<size_t>(split.records()));
    for (int64_t r = 0; r < split.records(); ++r) windows.push_back({r * split.record_size, 0});
    return windows;
  }
  if (split.clips.empty()) {
    SPT_CHECK(split.size() >= T, "the ", split.name, " split holds ", split.size(), " tokens, fewer than T ", T,
              "; use a smaller --ctx");
    append_stream_windows(0, split.size(), T, windows);
    return windows;
  }
  check_has_window(split, T, "");
  for (const ClipRange& clip : split.clips)
    if (clip.length >= T) append_stream_windows(clip.start, clip.length, T, windows);
  return windows;
}

int64_t short_clip_tokens(const TokenSplit& split, int64_t T) {
  int64_t tokens = 0;
  for (const ClipRange& clip : split.clips)
    if (clip.length < T) tokens += clip.length;
  return tokens;
}

}  // namespace spt
