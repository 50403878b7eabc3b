// Autoregressive sampling with a key/value cache: position t runs one row per sequence
// through every layer, appends its keys and values to the cache and attends only to
// its allowed keys, so each new token costs its attended pairs plus the matrix-vector
// products of the weights.
#pragma once

#include <cstdint>
#include <functional>
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
  // Back to position 0 with the allocation kept: a step at t reads only cached positions
  // <= t, which it has rewritten since, so nothing needs clearing.
  virtual void reset() = 0;
};

class KvDecoder final : public Decoder {
 public:
  // capacity: positions the cache holds (0: the model context); decoding stops there.
  KvDecoder(Model& model, int count, int64_t capacity = 0);
  int64_t position() const override { return t_; }
  const std::vector<float>& step(const uint8_t* previous) override;
  void reset() override { t_ = 0; }

 private:
  struct LayerCache {
    std::vector<float> keys;    // (count, capacity, H * Dk)
    std::vector<float> values;  // (count, capacity, C)
  };
  struct Ops;  // the CPU op table with attend() as its attention (model/block.h)
  // att (count, C) = attention of position t_ over the cached keys of `layer`, whose new
  // keys and values, in qkv (count, 2*H*Dk + C), are appended first.
  void attend(int layer, const float* qkv, float* att);
  Model& model_;
  int count_;
  int64_t capacity_ = 0;  // positions the cache holds (<= T)
  int64_t t_ = 0;
  std::vector<AttentionPlan> plans_;                     // (L)
  std::vector<LayerCache> caches_;                       // (L)
  std::vector<float> h_, a_, att_, y_, qkv_, ff_, logits_;  // (count, C|QKV|F|V)
  std::vector<float> mean_, rstd_;                          // (count) LayerNorm statistics
  std::vector<float> scores_;
  std::vector<int32_t> keys_;
};

using Sequences = std::vector<std::vector<uint8_t>>;  // (count, length) tokens

// A Decoder run past its capacity by sliding its window. When the window of `capacity`
// positions is full, the next window starts `keep` positions before the next token: the
// decoder is reset and those last `keep` tokens run through it again (re-priming) to
// rebuild the key/value cache, then decoding goes on. Positions restart at 0 in every
// window, as in the windows the model was trained on, so the logits of absolute position
// t equal those of the model's full forward pass over the window [window_start(), t].
// Re-priming costs `keep` decoder steps per slide: a large keep gives every token more
// context, a small one fewer steps per token ((capacity - keep) new tokens per slide).
class SlidingDecoder {
 public:
  // keep: tokens carried into each new window, 0 <= keep < capacity; capacity: the
  // decoder's (<= the model context).
  SlidingDecoder(Decoder& decoder, int count, int64_t capacity, int64_t keep);
  int64_t position() const { return next_; }          // absolute position step() returns next
  int64_t window_start() const { return start_; }     // absolute position of the window's position 0
  int64_t slides() const { return slides_; }
  // Slides the window if it is full and re-primes it, asking `keep_going` after every
  // re-priming step; false stops there (a later call or step() finishes the re-priming).
  bool make_room(const Sequences& sequences, const std::function<bool()>& keep_going = nullptr);
  // The logits (count, V) of absolute position position(); sequences[s] holds at least
  // position() tokens of sequence s (the input of this step and of any re-priming).
  const std::vector<float>& step(const Sequences& sequences);

 private:
  const std::vector<float>& run_position(const Sequences& sequences);
  Decoder& decoder_;
  std::vector<uint8_t> previous_;  // (count) inputs of the current step
  int64_t capacity_, keep_;
  int64_t start_ = 0, next_ = 0, slides_ = 0;
};

// How a token is drawn from a row of logits, in this order: divide by the temperature,
// keep the top_k most likely tokens, keep the smallest set of those whose probability
// (renormalized over the top k) reaches top_p, then draw from what is kept. Ties rank the
// lower token first, so top_k = 1 and a tiny top_p give the most likely token, as
// temperature 0 does.
struct DrawOptions {
  float temperature = 1.0f;  // >= 0; 0: always the most likely token
  int top_k = kVocab;        // 1..256 (256: no restriction)
  float top_p = 1.0f;        // (0, 1] (1: no restriction)
};

// Throws spt::Error naming the flag when a value is out of its range.
void validate(const DrawOptions& draw);

// The token drawn from `logits` (V) with uniform number `index` of stream `key`.
int draw_token(const float* logits, const DrawOptions& draw, uint64_t key, uint64_t index);

struct SampleOptions {
  int count = 1;                        // sequences sampled together
  // Tokens per sequence (0: the model context T). Past T, the window slides (SlidingDecoder);
  // image models refuse it: they sample one image, which is exactly T tokens.
  int64_t length = 0;
  int64_t keep = 0;                     // tokens kept at a slide, < T (0: T / 2); see window_keep
  float temperature = 1.0f;             // 0: always the most likely token
  int top_k = kVocab;                   // see DrawOptions
  float top_p = 1.0f;
  uint64_t seed = 1;
  // Optional, per sequence (or one for all), kept as given: one longer than T is forced token
  // by token through the slides (`spt sample` cuts a prompt to its last T - 1 tokens first).
  std::vector<std::vector<uint8_t>> prefixes;
  std::string device = "cpu";           // cpu | cuda: where the decoder runs; the draws stay on the host
  // Called once position t of every sequence is known (tokens: (count) at t); returning
  // false stops sampling there: every sequence then holds t + 1 tokens.
  std::function<bool(int64_t t, const std::vector<uint8_t>& tokens)> on_position;
  // Called after every re-priming step of a slide; returning false stops sampling before the
  // next position (every sequence then holds the tokens drawn so far).
  std::function<bool()> on_reprime_step;
};

// Tokens kept at each slide of the window: `keep`, or T / 2 for 0. T / 2 costs two decoder
// steps per new token past the context and leaves every token at least T / 2 of context.
int64_t window_keep(const ModelConfig& config, int64_t keep);

// Host bytes sample() needs for `count` sequences of `length` tokens on `device` (the CPU
// decoder's key/value cache of min(length, T) positions, the logits and the output); sample() refuses, naming these
// numbers, what exceeds the machine's physical memory.
double sample_memory_bytes(const ModelConfig& config, int count, int64_t length, const std::string& device);

// A decoder of `count` sequences on `device` (cpu | cuda). Asking for CUDA in a build or on
// a machine without it is an error, never a silent CPU run.
std::unique_ptr<Decoder> make_decoder(const std::string& device, Model& model, int count, int64_t capacity = 0);

// Returns `count` sequences of `length` tokens. Every token is drawn on the host from the
// decoder's logits with the same counter-based random stream, indexed by (seed, sequence,
// absolute position), so the CPU and the GPU give the same sequences wherever their logits
// round alike, and the first T tokens of a longer sample are a sample of length T.
std::vector<std::vector<uint8_t>> sample(Model& model, const SampleOptions& options);

}  // namespace spt
