// CudaDecoder: decode_forward (model/block.h) over the GPU op table in fp32, as KvDecoder
// runs it over the CPU one; the new keys and values of a step are copied into the
// per-layer caches and decode_attention reads them from there.
#include "model/cuda/cuda_sampler.h"

#include <cuda_runtime.h>

#include <string>

#include "core/cuda_check.h"
#include "core/error.h"
#include "model/block.h"
#include "model/cuda/cuda_ops.h"
#include "ops/cuda/attention_plan.h"
#include "ops/cuda/decode_attention.h"
#include "ops/embedding.h"
#include "ops/linear.h"

namespace spt::cuda {
namespace {

constexpr int kAttentionBlock = 64;  // key blocks of the device plan that decode_attention walks

}  // namespace

struct CudaDecoder::State {
  ModelConfig config;
  WeightTable weight_table;
  int count = 0;  // S sequences
  int64_t capacity = 0;  // positions the cache holds (<= T)
  int64_t t = 0;
  std::vector<DeviceAttentionPlan> plans;   // (L)
  std::unique_ptr<BlasContext> blas;
  DeviceBuffer<float> weights;              // (P)
  DeviceBuffer<float> keys;                 // (L, S, T, H * Dk)
  DeviceBuffer<float> values;               // (L, S, T, C)
  DeviceBuffer<float> h, a, att, y;         // (S, C)
  DeviceBuffer<float> qkv;                  // (S, 2 * H * Dk + C)
  DeviceBuffer<float> ff;                   // (S, F)
  DeviceBuffer<float> logits;               // (S, V)
  DeviceBuffer<float> mean, rstd;           // (S) LayerNorm statistics
  DeviceBuffer<uint8_t> previous;           // (S) tokens of position t - 1
  std::vector<float> host_logits;           // (S, V)

  const float* w(int64_t offset) const { return weights.data() + offset; }
  int64_t key_width() const { return int64_t{config.heads} * config.qk_dim(); }  // H * Dk
  float* layer_keys(int r) { return keys.data() + int64_t{r} * count * capacity * key_width(); }
  float* layer_values(int r) { return values.data() + int64_t{r} * count * capacity * config.width; }

  // Copies the keys and values of position t (in qkv) into layer r's caches.
  void append(int r) {
    const int64_t T = capacity, K = key_width(), C = config.width, QKV = config.qkv_width();
    const size_t f = sizeof(float);
    SPT_CUDA_CHECK(cudaMemcpy2DAsync(layer_keys(r) + t * K, T * K * f, qkv.data() + K, QKV * f, K * f, count,
                                     cudaMemcpyDeviceToDevice, blas->stream()));
    SPT_CUDA_CHECK(cudaMemcpy2DAsync(layer_values(r) + t * C, T * C * f, qkv.data() + 2 * K, QKV * f, C * f, count,
                                     cudaMemcpyDeviceToDevice, blas->stream()));
  }

  // The fp32 op table of one position of every sequence, attending through the cache.
  struct Ops : CudaOps {
    explicit Ops(State& s)
        : CudaOps(s.config, *s.blas, DType::f32, s.weights.data(), nullptr, nullptr, s.count, DropoutContext{}),
          state(s) {}
    void attention(int r, const void* qkv, void* att, float*) const {
      state.append(r);
      const DecodeShape shape{state.count, config().heads, config().qk_dim(), config().head_dim(), state.t,
                              config().qkv_width()};
      decode_attention(state.plans[r], shape, static_cast<const float*>(qkv), state.layer_keys(r),
                       state.layer_values(r), static_cast<float*>(att), stream());
    }
    State& state;
  };
};

CudaDecoder::CudaDecoder(const Model& model, int count, int64_t capacity) : state_(std::make_unique<State>()) {
  SPT_CHECK(cuda_available(), "no CUDA device is available for sampling: run with --device cpu");
  SPT_CHECK(count >= 1, "sample count ", count, " must be at least 1 (--count)");
  State& s = *state_;
  s.config = model.config();
  s.count = count;
  const ModelConfig& c = s.config;
  SPT_CHECK(capacity >= 0 && capacity <= c.ctx, "decoder capacity ", capacity, " must be in [0, ", c.ctx, "]");
  s.capacity = capacity > 0 ? capacity : c.ctx;
  SPT_CHECK(static_cast<int>(c.pos_sizes.size()) <= kMaxPositionTables, "the CUDA sampler takes at most ",
            kMaxPositionTables, " position tables, the model has ", c.pos_sizes.size(), ": use --device cpu");
  SPT_CHECK(c.qk_dim() <= 128 && c.head_dim() <= 128, "the CUDA sampler needs head dims of at most 128, the model has ",
            "Dk = ", c.qk_dim(), ", D = ", c.head_dim(), ": use --device cpu");
  s.weight_table = model.weight_table();

  // The pattern of positions below the capacity does not depend on T, so the plans and the
  // cache are sized by the capacity alone.
  const int64_t S = count, T = s.capacity, C = c.width;
  const int64_t cache_floats = int64_t{c.layers} * S * T * (s.key_width() + C);
  const int64_t weight_floats = static_cast<int64_t>(model.weights().size());
  size_t free_bytes = 0, total_bytes = 0;
  SPT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const int64_t needed = (cache_floats + weight_floats) * static_cast<int64_t>(sizeof(float));
  SPT_CHECK(static_cast<size_t>(needed) <= free_bytes, "sampling ", count, " sequences needs ", needed / 1048576,
            " MiB of GPU memory for the fp32 weights and key/value cache (L ", c.layers, ", T ", T,
            ") but the GPU has ", free_bytes / 1048576, " MiB free: lower --count");

  const Pattern pattern = model_pattern(c);
  for (int r = 0; r < c.layers; ++r) s.plans.push_back(make_device_plan(pattern, r, T, kAttentionBlock));
  s.blas = std::make_unique<BlasContext>(nullptr);
  s.weights = DeviceBuffer<float>(model.weights().size());
  s.weights.upload(model.weights().data(), model.weights().size());
  s.keys = DeviceBuffer<float>(static_cast<size_t>(int64_t{c.layers} * S * T * s.key_width()));
  s.values = DeviceBuffer<float>(static_cast<size_t>(int64_t{c.layers} * S * T * C));
  for (DeviceBuffer<float>* b : {&s.h, &s.a, &s.att, &s.y}) *b = DeviceBuffer<float>(static_cast<size_t>(S * C));
  s.qkv = DeviceBuffer<float>(static_cast<size_t>(S * c.qkv_width()));
  s.ff = DeviceBuffer<float>(static_cast<size_t>(S * c.ff_width()));
  s.logits = DeviceBuffer<float>(static_cast<size_t>(S * kVocab));
  s.mean = DeviceBuffer<float>(static_cast<size_t>(S));
  s.rstd = DeviceBuffer<float>(static_cast<size_t>(S));
  s.previous = DeviceBuffer<uint8_t>(static_cast<size_t>(S));
  SPT_CUDA_CHECK(cudaMemset(s.previous.data(), 0, static_cast<size_t>(S)));
  s.host_logits.resize(static_cast<size_t>(S * kVocab));
}

CudaDecoder::~CudaDecoder() = default;

int64_t CudaDecoder::position() const { return state_->t; }

// The device cache stays allocated: decode_attention at t reads cached positions <= t only,
// and each of them is written again before that.
void CudaDecoder::reset() { state_->t = 0; }

const std::vector<float>& CudaDecoder::step(const uint8_t* previous) {
  State& s = *state_;
  const ModelConfig& c = s.config;
  SPT_CHECK(s.t < s.capacity, "the decoder is at position ", s.t, ", the end of its cache of ", s.capacity,
            " positions");
  if (s.t > 0) s.previous.upload(previous, static_cast<size_t>(s.count));
  PositionTables tables;
  tables.count = static_cast<int>(c.pos_sizes.size());
  for (int k = 0; k < tables.count; ++k) {
    tables.size[k] = c.pos_sizes[k];
    tables.table[k] = s.weights.data() + s.weight_table.pos_emb[k];
  }
  embedding_forward_position(s.previous.data(), s.count, s.t, c.width, s.w(s.weight_table.tok_emb), tables,
                             s.h.data(), s.blas->stream());
  State::Ops ops(s);
  decode_forward(ops, s.weight_table, DecodeBuffers<void*>{s.h.data(), s.a.data(), s.mean.data(), s.rstd.data(),
                                                           s.qkv.data(), s.att.data(), s.y.data(), s.ff.data(),
                                                           s.logits.data()});
  s.logits.download(s.host_logits.data(), s.host_logits.size());
  ++s.t;
  return s.host_logits;
}

std::unique_ptr<Decoder> make_cuda_decoder(const Model& model, int count, int64_t capacity) {
  return std::make_unique<CudaDecoder>(model, count, capacity);
}

}  // namespace spt::cuda
