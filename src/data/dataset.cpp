#include "data/dataset.h"

#include <algorithm>
#include <cstring>
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
  throw Error(message("unknown data format '", format, "'; expected bytes, idx or cifar10"));
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
    return;
  }
  for (const TokenSplit* split : {&data.train, &data.valid, &data.test})
    SPT_CHECK(split->size() >= model.ctx, "the ", split->name, " split of '", data.path, "' holds ", split->size(),
              " tokens, fewer than ctx ", model.ctx, "; use a smaller --ctx or a larger file");
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
  } else {
    SPT_CHECK(split.size() >= T, "the ", split.name, " split holds ", split.size(), " tokens, fewer than T ", T,
              "; use a smaller --ctx");
    choices = split.size() - T + 1;
  }
  const uint64_t key = rng_key(seed, kDataStream, static_cast<uint64_t>(draw));
  for (int b = 0; b < B; ++b) {
    const int64_t choice = static_cast<int64_t>(uniform_int(key, static_cast<uint64_t>(b), static_cast<uint64_t>(choices)));
    const int64_t start = split.record_size > 0 ? choice * split.record_size : choice;
    std::memcpy(tokens + int64_t{b} * T, split.tokens.data() + start, static_cast<size_t>(T));
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
  const int64_t n = split.size();
  SPT_CHECK(n >= T, "the ", split.name, " split holds ", n, " tokens, fewer than T ", T, "; use a smaller --ctx");
  windows.reserve(static_cast<size_t>(n / T + 1));
  for (int64_t start = 0; start + T <= n; start += T) windows.push_back({start, 0});
  // The remainder is scored by a window ending at the split's end, so that it still
  // sees T - 1 tokens of context rather than few or none.
  if (n % T != 0) windows.push_back({n - T, T - n % T});
  return windows;
}

}  // namespace spt
