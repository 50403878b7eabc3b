// Autoregressive sampling with a key/value cache: position t runs one row per sequence
// through every layer, appends its keys and values to the cache and attends only to
// its allowed keys, so each new token costs its attended pairs plus the matrix-vector
// products of the weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace spt {

// Incremental decoding of `count` sequences: each step runs the next position of every
// sequence and returns its logits; keys and values of earlier positions stay cached.
// KvDecoder runs on the CPU, cuda::CudaDecoder (src/model/cuda/cuda_sampler.h) on a GPU.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual int64_t position() const = 0;
  // Runs position t = position() given each sequence's token at t - 1 (previous:
  // (count), unused at t = 0); returns the logits of position t, (count, V), on the host.
  virtual const std::vector<float>& step(const uint8_t* previous) = 0;
};

class KvDecoder final : public Decoder {
 public:
  KvDecoder(Model& model, int count);
  int64_t position() const override { return t_; }
  const std::vector<float>& step(const uint8_t* previous) override;

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
  std::string device = "cpu";           // cpu | cuda: where the decoder runs; the draws stay on the host
};

// A decoder of `count` sequences on `device` (cpu | cuda). Asking for CUDA in a build or on
// a machine without it is an error, never a silent CPU run.
std::unique_ptr<Decoder> make_decoder(const std::string& device, Model& model, int count);

// Returns `count` sequences of `length` tokens. Every token is drawn on the host from the
// decoder's logits with the same counter-based random stream, so the CPU and the GPU give
// the same sequences wherever their logits round alike.
std::vector<std::vector<uint8_t>> sample(Model& model, const SampleOptions& options);

}  // namespace spt
