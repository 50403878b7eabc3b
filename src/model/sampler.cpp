// Sampling with a key/value cache. All sequences advance one position at a time: the
// new row of every sequence runs through each layer as a (count, C) matrix
// (decode_forward of model/block.h), its keys and values are appended to the layer's
// cache, and each head attends only to the keys its mask allows, in fp32 (as the
// paper's released code computes q.k when sampling).
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "io/input_file.h"
#include "model/block.h"
#include "model/cpu_ops.h"
#include "ops/embedding.h"

namespace spt {
namespace {

// Tokens in draw order: most likely first, ties broken toward the lower token.
void rank_tokens(const double* probs, int* order) {
  for (int v = 0; v < kVocab; ++v) order[v] = v;
  std::stable_sort(order, order + kVocab, [&](int a, int b) { return probs[a] > probs[b]; });
}

// Zeroes every probability outside the top k and then outside the top-p nucleus.
void restrict_tokens(double* probs, const DrawOptions& draw) {
  int order[kVocab];
  rank_tokens(probs, order);
  double kept_total = 0.0;
  for (int r = 0; r < draw.top_k; ++r) kept_total += probs[order[r]];
  for (int r = draw.top_k; r < kVocab; ++r) probs[order[r]] = 0.0;
  if (draw.top_p >= 1.0f) return;
  double cumulative = 0.0;
  int r = 0;
  for (; r < draw.top_k; ++r) {
    cumulative += probs[order[r]];
    if (cumulative >= draw.top_p * kept_total) break;
  }
  for (++r; r < kVocab; ++r) probs[order[r]] = 0.0;
}

}  // namespace

void validate(const DrawOptions& draw) {
  SPT_CHECK(draw.temperature >= 0.0f && std::isfinite(draw.temperature), "temperature ", draw.temperature,
            " must be a non-negative number (--temperature)");
  SPT_CHECK(draw.top_k >= 1 && draw.top_k <= kVocab, "top-k ", draw.top_k, " must be between 1 and ", kVocab,
            " (--top-k; ", kVocab, ": no restriction)");
  SPT_CHECK(draw.top_p > 0.0f && draw.top_p <= 1.0f, "top-p ", draw.top_p,
            " must be above 0 and at most 1 (--top-p; 1: no restriction)");
}

int draw_token(const float* logits, const DrawOptions& draw, uint64_t key, uint64_t index) {
  if (draw.temperature <= 0.0f) return static_cast<int>(std::max_element(logits, logits + kVocab) - logits);
  double probs[kVocab];
  double top = -std::numeric_limits<double>::infinity();
  for (int v = 0; v < kVocab; ++v) top = std::max(top, static_cast<double>(logits[v]) / draw.temperature);
  double total = 0.0;
  for (int v = 0; v < kVocab; ++v) total += probs[v] = std::exp(logits[v] / static_cast<double>(draw.temperature) - top);
  const bool restricted = draw.top_k < kVocab || draw.top_p < 1.0f;
  if (restricted) {
    restrict_tokens(probs, draw);
    total = 0.0;
    for (double p : probs) total += p;
  }
  double u = static_cast<double>(uniform01(key, index)) * total;
  int last_kept = 0;
  for (int v = 0; v < kVocab; ++v) {
    if (probs[v] <= 0.0) continue;
    if (u < probs[v]) return v;
    u -= probs[v];
    last_kept = v;
  }
  return restricted ? last_kept : kVocab - 1;  // rounding left u past the end: the last candidate
}

double sample_memory_bytes(const ModelConfig& c, int count, int64_t length, const std::string& device) {
  const double cached = static_cast<double>(std::min<int64_t>(length, c.ctx));  // positions of one window
  const double per_sequence_cache =
      device == "cpu" ? 4.0 * c.layers * cached * (c.heads * c.qk_dim() + c.width) : 0.0;
  const double per_sequence_rows = 4.0 * (4.0 * c.width + c.qkv_width() + c.ff_width() + kVocab);
  return static_cast<double>(count) * (per_sequence_cache + per_sequence_rows + static_cast<double>(length));
}

#ifdef SPT_HAVE_CUDA
namespace cuda {
std::unique_ptr<Decoder> make_cuda_decoder(const Model& model, int count, int64_t capacity);
}
#endif

std::unique_ptr<Decoder> make_decoder(const std::string& device, Model& model, int count, int64_t capacity) {
  if (device == "cpu") return std::make_unique<KvDecoder>(model, count, capacity);
  if (device == "cuda") {
#ifdef SPT_HAVE_CUDA
    return cuda::make_cuda_decoder(model, count, capacity);
#else
    throw Error("this spt was built without CUDA: rebuild on a machine with the CUDA toolkit (cmake -DSPT_CUDA=ON) "
                "or use --device cpu");
#endif
  }
  throw Error(message("unknown device '", device, "': use cpu or cuda (--device)"));
}

KvDecoder::KvDecoder(Model& model, int count, int64_t capacity) : model_(model), count_(count) {
  const ModelConfig& c = model.config();
  SPT_CHECK(count >= 1, "sample count ", count, " must be at least 1 (--count)");
  SPT_CHECK(capacity >= 0 && capacity <= c.ctx, "decoder capacity ", capacity, " must be in [0, ", c.ctx, "]");
  capacity_ = capacity > 0 ? capacity : c.ctx;
  const Pattern pattern = model_pattern(c);
  for (int r = 0; r < c.layers; ++r) plans_.push_back(make_plan(pattern, r));
  caches_.resize(c.layers);
  for (LayerCache& cache : caches_) {
    cache.keys.assign(static_cast<size_t>(count) * capacity_ * c.heads * c.qk_dim(), 0.0f);
    cache.values.assign(static_cast<size_t>(count) * capacity_ * c.width, 0.0f);
  }
  const size_t rows = static_cast<size_t>(count);
  h_.resize(rows * c.width);
  a_.resize(rows * c.width);
  att_.resize(rows * c.width);
  y_.resize(rows * c.width);
  qkv_.resize(rows * c.qkv_width());
  ff_.resize(rows * c.ff_width());
  logits_.resize(rows * kVocab);
  mean_.resize(rows);
  rstd_.resize(rows);
}

struct KvDecoder::Ops : CpuOps {
  explicit Ops(KvDecoder& decoder)
      : CpuOps(decoder.model_.config(), decoder.model_.weights().data(), nullptr, decoder.count_, DropoutContext{}),
        decoder(decoder) {}
  void attention(int layer, const float* qkv, float* att, float*) const { decoder.attend(layer, qkv, att); }
  KvDecoder& decoder;
};

void KvDecoder::attend(int r, const float* qkv, float* att) {
  const ModelConfig& c = model_.config();
  const int C = c.width, H = c.heads, Dk = c.qk_dim(), D = c.head_dim(), QKV = c.qkv_width();
  const int64_t T = capacity_;  // rows per sequence in the cache
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(Dk)));
  LayerCache& cache = caches_[r];
  for (int s = 0; s < count_; ++s) {
    const float* row = qkv + static_cast<int64_t>(s) * QKV;
    float* k_cache = cache.keys.data() + static_cast<int64_t>(s) * T * H * Dk;  // (T, H * Dk)
    float* v_cache = cache.values.data() + static_cast<int64_t>(s) * T * C;     // (T, C)
    std::copy(row + H * Dk, row + 2 * H * Dk, k_cache + t_ * H * Dk);
    std::copy(row + 2 * H * Dk, row + QKV, v_cache + t_ * C);
    float* o = att + static_cast<int64_t>(s) * C;
    std::fill(o, o + C, 0.0f);
    for (int head = 0; head < H; ++head) {
      plans_[r].heads[head].row_keys(t_, keys_);
      if (keys_.empty()) continue;
      const float* q = row + head * Dk;
      scores_.resize(keys_.size());
      float top = -std::numeric_limits<float>::infinity();
      for (size_t e = 0; e < keys_.size(); ++e) {
        const float* kj = k_cache + static_cast<int64_t>(keys_[e]) * H * Dk + head * Dk;
        float dot = 0.0f;
        for (int d = 0; d < Dk; ++d) dot += q[d] * kj[d];
        scores_[e] = dot * scale;
        top = std::max(top, scores_[e]);
      }
      double total = 0.0;
      for (float& score : scores_) total += score = std::exp(score - top);
      const float inv = static_cast<float>(1.0 / total);
      for (size_t e = 0; e < keys_.size(); ++e) {
        const float* vj = v_cache + static_cast<int64_t>(keys_[e]) * C + head * D;
        const float weight = scores_[e] * inv;
        for (int d = 0; d < D; ++d) o[head * D + d] += weight * vj[d];
      }
    }
  }
}

const std::vector<float>& KvDecoder::step(const uint8_t* previous) {
  const ModelConfig& c = model_.config();
  SPT_CHECK(t_ < capacity_, "the decoder is at position ", t_, ", the end of its cache of ", capacity_, " positions");
  const WeightTable& weights = model_.weight_table();
  const float* w = model_.weights().data();
  std::vector<const float*> tables;
  for (int64_t offset : weights.pos_emb) tables.push_back(w + offset);
  cpu::embedding_forward_position(previous, count_, t_, c.width, w + weights.tok_emb, tables, c.pos_sizes, h_.data());
  Ops ops(*this);
  decode_forward(ops, weights, DecodeBuffers<float*>{h_.data(), a_.data(), mean_.data(), rstd_.data(), qkv_.data(),
                                                     att_.data(), y_.data(), ff_.data(), logits_.data()});
  ++t_;
  return logits_;
}

SlidingDecoder::SlidingDecoder(Decoder& decoder, int count, int64_t capacity, int64_t keep)
    : decoder_(decoder), previous_(static_cast<size_t>(count), 0), capacity_(capacity), keep_(keep) {
  SPT_CHECK(capacity >= 1, "a sliding window needs at least one position, got ", capacity);
  SPT_CHECK(keep >= 0 && keep < capacity, "--keep ", keep, " must be below the window of ", capacity,
            " positions (it is the part of a full window that the next one starts with)");
}

const std::vector<float>& SlidingDecoder::run_position(const Sequences& sequences) {
  const int64_t t = start_ + decoder_.position();  // absolute position of this step
  for (size_t s = 0; s < previous_.size(); ++s) {
    SPT_CHECK(t == start_ || static_cast<int64_t>(sequences[s].size()) >= t, "sequence ", s, " holds ",
              sequences[s].size(), " tokens; position ", t, " needs the ", t, " before it");
    previous_[s] = t > start_ ? sequences[s][t - 1] : 0;
  }
  return decoder_.step(previous_.data());
}

bool SlidingDecoder::make_room(const Sequences& sequences, const std::function<bool()>& keep_going) {
  if (decoder_.position() == capacity_) {
    decoder_.reset();
    start_ = next_ - keep_;
    ++slides_;
  }
  while (start_ + decoder_.position() < next_) {
    run_position(sequences);
    if (keep_going && !keep_going()) return false;
  }
  return true;
}

const std::vector<float>& SlidingDecoder::step(const Sequences& sequences) {
  make_room(sequences);
  const std::vector<float>& logits = run_position(sequences);
  ++next_;
  return logits;
}

int64_t window_keep(const ModelConfig& c, int64_t keep) { return keep > 0 ? keep : c.ctx / 2; }

namespace {

// Every check before anything is allocated: the counts, the draw, the prefixes and the memory.
void check_sample_options(const ModelConfig& c, const SampleOptions& options, int64_t length) {
  SPT_CHECK(options.count >= 1, "sample count ", options.count, " must be at least 1 (--count)");
  SPT_CHECK(options.length >= 0, "sample length ", options.length,
            " must not be negative (--length; 0: the model context ", c.ctx, ")");
  SPT_CHECK(c.pos_sizes.size() != 3 || length <= c.ctx, "an image model samples one image of ", c.pos_sizes[0],
            " x ", c.pos_sizes[1], " x ", c.pos_sizes[2], " = ", c.ctx, " tokens; --length ", length,
            " is longer: use --length <= ", c.ctx, " (0: the whole image)");
  SPT_CHECK(options.keep >= 0 && options.keep < c.ctx, "--keep ", options.keep, " must be in [0, ", c.ctx,
            "), below the model context (0: ", c.ctx / 2, ")");
  validate(DrawOptions{options.temperature, options.top_k, options.top_p});
  SPT_CHECK(options.prefixes.empty() || options.prefixes.size() == 1 ||
                static_cast<int>(options.prefixes.size()) == options.count,
            "got ", options.prefixes.size(), " prefixes for ", options.count,
            " sequences: give one, or one per sequence");
  for (const auto& p : options.prefixes)
    SPT_CHECK(static_cast<int64_t>(p.size()) <= length, "prefix of ", p.size(), " tokens is longer than the ",
              length, " tokens to sample: raise --length");
  const double needed = sample_memory_bytes(c, options.count, length, options.device);
  const double limit = static_cast<double>(memory_limit_bytes());
  SPT_CHECK(needed <= limit, "sampling ", options.count, " sequences of ", length, " tokens needs ",
            static_cast<int64_t>(needed / (1 << 20)), " MiB, more than the ", static_cast<int64_t>(limit / (1 << 20)),
            " MiB of memory spt may use here: lower --count or --length");
}

// Sets every sequence's token at t, in out and in current (count): the prefix's where it
// has one, else a draw with uniform number t of the sequence's stream, so that a token is
// a function of (seed, sequence, absolute position) and of the logits alone.
void choose_tokens(const SampleOptions& options, const std::vector<float>& logits, int64_t t, Sequences& out,
                   std::vector<uint8_t>& current) {
  const DrawOptions draw{options.temperature, options.top_k, options.top_p};
  for (int s = 0; s < options.count; ++s) {
    const std::vector<uint8_t>* prefix =
        options.prefixes.empty() ? nullptr : &options.prefixes[options.prefixes.size() == 1 ? 0 : s];
    if (prefix && t < static_cast<int64_t>(prefix->size())) {
      out[s][t] = (*prefix)[t];
    } else {
      const uint64_t key = rng_key(options.seed, 0x73616D70ULL, static_cast<uint64_t>(s));
      out[s][t] = static_cast<uint8_t>(
          draw_token(logits.data() + static_cast<int64_t>(s) * kVocab, draw, key, static_cast<uint64_t>(t)));
    }
    current[s] = out[s][t];
  }
}

}  // namespace

Sequences sample(Model& model, const SampleOptions& options) {
  const ModelConfig& c = model.config();
  const int64_t length = options.length > 0 ? options.length : c.ctx;
  check_sample_options(c, options, length);
  const int64_t capacity = std::min<int64_t>(length, c.ctx);
  const std::unique_ptr<Decoder> decoder = make_decoder(options.device, model, options.count, capacity);
  SlidingDecoder window(*decoder, options.count, capacity, std::min(window_keep(c, options.keep), capacity - 1));
  Sequences out(options.count, std::vector<uint8_t>(length));
  std::vector<uint8_t> current(options.count, 0);  // (count) tokens at t
  auto stop_at = [&](int64_t tokens) {
    for (auto& sequence : out) sequence.resize(tokens);
    return out;
  };
  for (int64_t t = 0; t < length; ++t) {
    if (!window.make_room(out, options.on_reprime_step)) return stop_at(t);
    choose_tokens(options, window.step(out), t, out, current);
    if (options.on_position && !options.on_position(t, current)) return stop_at(t + 1);
  }
  return out;
}

}  // namespace spt
