// Autoregressive sampling with a key/value cache: position t runs one row per sequence
// through every layer, appends its keys and values to the cache and attends only to
// its allowed keys, so each new token costs its attended pairs plus the matrix-vector
// products of the weights.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"

namespace spt {

// Incremental decoding of `count` sequences: each step runs the next position of every
// sequence and returns its logits; keys and values of earlier positions stay cached.
class KvDecoder {
 public:
  KvDecoder(Model& model, int count);
  int64_t position() const { return t_; }
  // Runs position t = position() given each sequence's token at t - 1 (previous:
  // (count), unused at t = 0); returns the logits of position t, (count, V).
  const std::vector<float>& step(const uint8_t* previous);

 private:
  struct LayerCache {
    std::vector<float> keys;    // (count, T, H * Dk)
    std::vector<float> values;  // (count, T, C)
  };
  void attend(int layer);
  Model& model_;
  int count_;
  int64_t t_ = 0;
  std::vector<AttentionPlan> plans_;                     // (L)
  std::vector<LayerCache> caches_;                       // (L)
  std::vector<float> h_, a_, att_, y_, qkv_, ff_, logits_;  // (count, C|QKV|F|V)
  std::vector<float> mean_, rstd_;                          // (count) LayerNorm statistics
  std::vector<float> scores_;
  std::vector<int32_t> keys_;
};

struct SampleOptions {
  int count = 1;                        // sequences sampled together
  int64_t length = 0;                   // tokens per sequence (0: the model context)
  float temperature = 1.0f;             // 0: always the most likely token
  uint64_t seed = 1;
  std::vector<std::vector<uint8_t>> prefixes;  // optional, per sequence (or one for all): kept as given
};

// Returns `count` sequences of `length` tokens.
std::vector<std::vector<uint8_t>> sample(Model& model, const SampleOptions& options);

}  // namespace spt
