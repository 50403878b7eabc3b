// CudaModel: the forward and backward of model/block.h over the GPU op table, on device
// buffers planned up front. The CPU model runs the same block definition over its op
// table, so the two backends compute the same function and differ only by rounding.
#include "model/cuda/cuda_model.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/cuda_check.h"
#include "core/error.h"
#include "model/cuda/cuda_ops.h"
#include "ops/attention.h"
#include "ops/cuda/attention_plan.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/cuda/optimizer.h"

namespace spt::cuda {

std::string MemoryPlan::describe() const {
  char text[256];
  std::snprintf(text, sizeof text,
                "params %.1f MiB, gradients %.1f MiB, optimizer %.1f MiB, activations %.1f MiB, workspace %.1f MiB, "
                "total %.1f MiB",
                params / 1048576.0, gradients / 1048576.0, optimizer / 1048576.0, activations / 1048576.0,
                workspace / 1048576.0, total() / 1048576.0);
  return text;
}

namespace {

constexpr int kAttentionBlock = 64;

struct LayerSlots {  // byte offsets of one layer's activations in the arena
  int64_t ln1, mean1, rstd1, qkv, att, lse, h_mid, ln2, mean2, rstd2, fc1, act;
};

// Byte offsets of every batch-dependent buffer in one device allocation.
struct Slots {
  int64_t size = 0;
  int64_t tokens, residual, branch, lnf, meanf, rstdf, logits, losses;  // always
  int64_t dh = -1, dbranch = -1, dln = -1, datt = -1, dqkv = -1, dff = -1, dlogits = -1;  // training
  int64_t attention = -1, attention_bytes = 0;  // the attention calls' scratch (attention_workspace_bytes)
  std::vector<LayerSlots> layers;  // (L) without recomputation, else (1)
  // With recomputation in training, each layer's attention output and lse are still kept
  // (L): O(T C) per layer, and the attention forward is the costliest op to recompute.
  std::vector<int64_t> kept_att, kept_lse;

  int64_t take(int64_t bytes) {
    const int64_t offset = (size + 255) / 256 * 256;
    size = offset + bytes;
    return offset;
  }
};

}  // namespace

struct CudaModel::State {
  ModelConfig config;
  WeightTable weight_table;
  DType dtype;  // of the activations
  bool training;
  const ParamTable* table;
  int64_t P = 0;  // floats in the parameter buffer
  std::vector<DeviceAttentionPlan> plans;  // (L)
  std::unique_ptr<BlasContext> blas;

  // Parameters and optimizer state do not depend on the batch: their own allocations.
  DeviceBuffer<float> weights;  // (P)
  DeviceBuffer<float> grads;    // (grad_capacity): P gradients, then zero padding for collectives
  DeviceBuffer<float> m, v;     // (moments_end - moments_begin): the shard's AdamW moments
  int64_t moments_begin = 0, moments_end = 0, grad_capacity = 0;
  DeviceBuffer<uint16_t> compute;            // (P) activation-type copy of the weights (not for fp32)
  DeviceBuffer<ParamSegment> segments;
  int segment_count = 0;
  // The segment table of one shard [shard_begin, shard_end), offsets relative to its begin.
  DeviceBuffer<ParamSegment> shard_segments;
  int shard_segment_count = 0;
  int64_t shard_begin = -1, shard_end = -1;
  int64_t optimizer_step = 0;

  int batch = 0;
  bool training_buffers = false;
  bool recompute_buffers = true;
  Slots slots;
  DeviceBuffer<unsigned char> arena;
  MemoryPlan plan;
  std::vector<float> host_losses;

  int64_t e() const { return static_cast<int64_t>(dtype_size(dtype)); }

  Slots plan_slots(int B, bool train, bool recompute) const {
    const ModelConfig& c = config;
    const int64_t N = int64_t{B} * c.ctx, C = c.width, F = c.ff_width(), QKV = c.qkv_width(), V = kVocab, f = 4;
    Slots s;
    s.tokens = s.take(N);
    s.residual = s.take((train ? c.layers + 1 : 2) * N * C * f);
    const int count = train && !recompute ? c.layers : 1;
    for (int r = 0; r < count; ++r) {
      LayerSlots l;
      l.ln1 = s.take(N * C * e());
      l.mean1 = s.take(N * f);
      l.rstd1 = s.take(N * f);
      l.qkv = s.take(N * QKV * e());
      l.att = s.take(N * C * e());
      l.lse = s.take(int64_t{B} * c.heads * c.ctx * f);
      l.h_mid = s.take(N * C * f);
      l.ln2 = s.take(N * C * e());
      l.mean2 = s.take(N * f);
      l.rstd2 = s.take(N * f);
      l.fc1 = s.take(N * F * e());
      l.act = s.take(N * F * e());
      s.layers.push_back(l);
    }
    if (train && recompute)
      for (int r = 0; r < c.layers; ++r) {
        s.kept_att.push_back(s.take(N * C * e()));
        s.kept_lse.push_back(s.take(int64_t{B} * c.heads * c.ctx * f));
      }
    s.branch = s.take(N * C * e());
    s.lnf = s.take(N * C * e());
    s.meanf = s.take(N * f);
    s.rstdf = s.take(N * f);
    s.logits = s.take(N * V * f);
    s.losses = s.take(N * f);
    if (train) {
      s.dh = s.take(N * C * f);
      s.dbranch = s.take(N * C * e());
      s.dln = s.take(N * C * e());
      s.datt = s.take(N * C * e());
      s.dqkv = s.take(N * QKV * e());
      s.dff = s.take(N * F * e());
      s.dlogits = s.take(N * V * e());
    }
    const AttentionShape shape = attention_shape_for(B);
    for (const DeviceAttentionPlan& plan : plans) {
      s.attention_bytes = std::max<int64_t>(s.attention_bytes, attention_workspace_bytes(plan, shape, dtype, false));
      if (train)
        s.attention_bytes = std::max<int64_t>(s.attention_bytes, attention_workspace_bytes(plan, shape, dtype, true));
    }
    s.attention = s.take(s.attention_bytes);
    return s;
  }

  MemoryPlan memory(const Slots& s) const {
    MemoryPlan p;
    p.params = P * 4 + (dtype == DType::f32 ? 0 : P * 2);
    p.gradients = training ? grad_capacity * 4 : 0;
    p.optimizer = training ? 2 * (moments_end - moments_begin) * 4 : 0;
    p.activations = s.size;
    p.workspace = static_cast<int64_t>(blas->workspace_bytes());
    for (const DeviceAttentionPlan& plan : plans)
      p.workspace += (2 * (plan.heads * plan.blocks + 1)) * 8 + plan.nnz * 10;
    return p;
  }

  void ensure_batch(int B, bool train, bool recompute) {
    SPT_CHECK(B >= 1, "batch size ", B, " must be at least 1");
    SPT_CHECK(!train || training, "this CudaModel was built for evaluation only");
    if (B == batch && train == training_buffers && recompute == recompute_buffers) return;
    arena = DeviceBuffer<unsigned char>();  // free the old buffers first: peak is one plan
    batch = 0;                               // no buffers until the new plan is allocated
    const Slots wanted = plan_slots(B, train, recompute);
    const MemoryPlan needed = memory(wanted);
    size_t free_bytes = 0, total_bytes = 0;
    SPT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    SPT_CHECK(static_cast<size_t>(wanted.size) <= free_bytes, "the GPU has ", free_bytes / 1048576, " MiB free but ",
              "batch ", B, " needs ", wanted.size / 1048576, " MiB more for activations (", needed.describe(),
              "): lower --batch or --ctx, or keep --recompute true");
    arena = DeviceBuffer<unsigned char>(wanted.size);
    slots = wanted;
    plan = needed;
    batch = B;
    training_buffers = train;
    recompute_buffers = recompute;
    host_losses.resize(static_cast<size_t>(rows()));
  }

  template <typename T = void>
  T* at(int64_t slot) {
    return reinterpret_cast<T*>(arena.data() + slot);
  }
  float* residual(int index) { return at<float>(slots.residual) + index * rows() * config.width; }
  const float* w32(int64_t offset) const { return weights.data() + offset; }
  float* g(int64_t offset) { return grads.data() + offset; }
  int64_t rows() const { return int64_t{batch} * config.ctx; }

  void embed(const uint8_t* host_tokens) {
    SPT_CUDA_CHECK(cudaMemcpy(at(slots.tokens), host_tokens, rows(), cudaMemcpyHostToDevice));
    PositionTables tables;
    tables.count = static_cast<int>(config.pos_sizes.size());
    for (int k = 0; k < tables.count; ++k) {
      tables.size[k] = config.pos_sizes[k];
      tables.table[k] = weights.data() + weight_table.pos_emb[k];
    }
    embedding_forward(at<uint8_t>(slots.tokens), batch, config.ctx, config.width, w32(weight_table.tok_emb), tables,
                      residual(0));
  }

  AttentionShape attention_shape_for(int B) const {
    const int QKV = config.qkv_width();
    return AttentionShape{B, config.ctx, config.heads, config.qk_dim(), config.head_dim(), QKV, QKV, QKV,
                          config.width};
  }
  AttentionShape attention_shape() const { return attention_shape_for(batch); }

  // The op table of the current batch over whole sequences (model/block.h).
  CudaSequenceOps sequence_ops(const DropoutContext& d) {
    const CudaOps ops(config, *blas, dtype, weights.data(), dtype == DType::f32 ? nullptr : compute.data(),
                      grads.data(), rows(), d);
    return CudaSequenceOps(ops, plans, attention_shape(), at(slots.attention),
                           static_cast<size_t>(slots.attention_bytes));
  }

  BlockBuffers<void*> block_buffers(const LayerSlots& a, const float* h_in, float* h_out) {
    return {.h_in = h_in, .ln1 = at(a.ln1), .mean1 = at<float>(a.mean1), .rstd1 = at<float>(a.rstd1),
            .qkv = at(a.qkv), .att = at(a.att), .lse = at<float>(a.lse), .branch = at(slots.branch),
            .h_mid = at<float>(a.h_mid), .ln2 = at(a.ln2), .mean2 = at<float>(a.mean2), .rstd2 = at<float>(a.rstd2),
            .fc1 = at(a.fc1), .act = at(a.act), .h_out = h_out};
  }

  HeadBuffers<void*> head_buffers(const float* h) {
    return {.h = h, .lnf = at(slots.lnf), .mean = at<float>(slots.meanf), .rstd = at<float>(slots.rstdf),
            .logits = at<float>(slots.logits)};
  }

  // With attention_kept, a.att and a.lse already hold this layer's attention (a recomputation).
  void layer_forward(int r, const float* h_in, float* h_out, const LayerSlots& a, const DropoutContext& d,
                     bool attention_kept = false) {
    CudaSequenceOps ops = sequence_ops(d);
    ops.attention_kept = attention_kept;
    block_forward(ops, weight_table.layers[r], r, block_buffers(a, h_in, h_out));
  }

  LayerSlots layer_slots(int r) const {
    LayerSlots a = slots.layers[slots.layers.size() == 1 ? 0 : r];
    if (!slots.kept_att.empty()) {
      a.att = slots.kept_att[r];
      a.lse = slots.kept_lse[r];
    }
    return a;
  }

  const float* forward_blocks(const DropoutContext& d, bool keep_residuals) {
    const int L = config.layers;
    for (int r = 0; r < L; ++r) {
      const int in = keep_residuals ? r : r % 2, out = keep_residuals ? r + 1 : (r + 1) % 2;
      layer_forward(r, residual(in), residual(out), layer_slots(r), d);
    }
    return residual(keep_residuals ? L : L % 2);
  }

  void head_forward(const float* h) {
    CudaSequenceOps ops = sequence_ops(DropoutContext{});
    spt::head_forward(ops, weight_table, head_buffers(h));
  }

  void layer_backward(int r, const float* h_in, const LayerSlots& a, const DropoutContext& d) {
    CudaSequenceOps ops = sequence_ops(d);
    const BlockGradients<void*> gradients{.dh = at<float>(slots.dh), .dbranch = at(slots.dbranch),
                                          .dff = at(slots.dff), .dln = at(slots.dln), .datt = at(slots.datt),
                                          .dqkv = at(slots.dqkv)};
    block_backward(ops, weight_table.layers[r], r, block_buffers(a, h_in, nullptr), gradients);
  }

  // Sum of the per-token losses, downloaded and added on the host in fp64 in order.
  double loss_sum(float* host_out) {
    float* host = host_out != nullptr ? host_out : host_losses.data();
    SPT_CUDA_CHECK(cudaMemcpy(host, at(slots.losses), rows() * sizeof(float), cudaMemcpyDeviceToHost));
    double sum = 0.0;
    for (int64_t n = 0; n < rows(); ++n) sum += host[n];
    return sum;
  }
};

CudaModel::CudaModel(const Model& host, DType precision, bool training, bool deterministic,
                     OptimizerShard shard)
    : state_(std::make_unique<State>()) {
  SPT_CHECK(cuda_available(), "no CUDA device is available: run with --device cpu");
  State& s = *state_;
  s.config = host.config();
  s.dtype = precision;
  s.training = training;
  s.table = &host.params();
  s.P = s.table->total();
  const ModelConfig& c = s.config;
  SPT_CHECK(static_cast<int>(c.pos_sizes.size()) <= kMaxPositionTables, "the CUDA backend takes at most ",
            kMaxPositionTables, " position tables, the model has ", c.pos_sizes.size());
  s.weight_table = host.weight_table();
  const Pattern pattern = model_pattern(c);
  // The block layout grows as (T / 64)^2 (minutes of host time and gigabytes at T of a
  // million) and only the block-layout and SIMT kernels read it: it is built only when
  // those serve this model (fp32, or head dims the pattern-specific kernels do not take).
  for (int r = 0; r < c.layers; ++r) {
    DeviceAttentionPlan plan = make_device_plan(pattern, r, c.ctx, kAttentionBlock, false);
    if (std::string(spt::cuda::attention_path(plan, s.attention_shape_for(1), s.dtype)) != "fast")
      plan = make_device_plan(pattern, r, c.ctx, kAttentionBlock, true);
    plan.deterministic = deterministic;
    s.plans.push_back(std::move(plan));
  }
  s.blas = std::make_unique<BlasContext>(nullptr);

  s.weights = DeviceBuffer<float>(s.P);
  if (s.dtype != DType::f32) s.compute = DeviceBuffer<uint16_t>(s.P);
  if (training) {
    s.moments_begin = shard.moments_begin;
    s.moments_end = shard.moments_end < 0 ? s.P : shard.moments_end;
    SPT_CHECK(0 <= s.moments_begin && s.moments_begin <= s.moments_end && s.moments_end <= s.P, "optimizer shard [",
              s.moments_begin, ", ", s.moments_end, ") lies outside the ", s.P, " parameters");
    s.grad_capacity = std::max(s.P, shard.gradient_capacity);
    s.grads = DeviceBuffer<float>(s.grad_capacity);
    const int64_t moments = s.moments_end - s.moments_begin;
    s.m = DeviceBuffer<float>(moments);
    s.v = DeviceBuffer<float>(moments);
    if (moments > 0) {
      SPT_CUDA_CHECK(cudaMemset(s.m.data(), 0, moments * sizeof(float)));
      SPT_CUDA_CHECK(cudaMemset(s.v.data(), 0, moments * sizeof(float)));
    }
    zero_grads();
    std::vector<ParamSegment> segments;
    for (const ParamInfo& p : s.table->all()) segments.push_back({p.offset, p.size, p.decay});
    s.segment_count = static_cast<int>(segments.size());
    s.segments = DeviceBuffer<ParamSegment>(segments.size());
    s.segments.upload(segments.data(), segments.size());
  }
  upload_weights(host.weights());
}

CudaModel::~CudaModel() = default;

const ModelConfig& CudaModel::config() const { return state_->config; }
DType CudaModel::precision() const { return state_->dtype; }
std::string CudaModel::attention_path() const {
  const AttentionShape shape = state_->attention_shape_for(std::max(state_->batch, 1));  // also before a batch
  return cuda::attention_path(state_->plans.front(), shape, state_->dtype);
}
const MemoryPlan& CudaModel::current_plan() const { return state_->plan; }

MemoryPlan CudaModel::memory_plan(int B, bool training) const {
  return state_->memory(state_->plan_slots(B, training, recompute));
}

void CudaModel::upload_weights(const std::vector<float>& weights) {
  State& s = *state_;
  SPT_CHECK(static_cast<int64_t>(weights.size()) == s.P, "weights of ", weights.size(), " floats for a model of ", s.P);
  s.weights.upload(weights.data(), weights.size());
  if (s.dtype != DType::f32) convert_from_f32(s.weights.data(), s.P, s.dtype, s.compute.data());
  SPT_CUDA_CHECK(cudaDeviceSynchronize());
}

const float* CudaModel::master_weights() const { return state_->weights.data(); }

void CudaModel::download_weights(std::vector<float>& weights) const {
  weights.resize(state_->P);
  state_->weights.download(weights.data(), weights.size());
}

void CudaModel::upload_optimizer(const std::vector<float>& m, const std::vector<float>& v, int64_t step) {
  State& s = *state_;
  SPT_CHECK(s.training, "this CudaModel was built for evaluation only");
  const size_t moments = static_cast<size_t>(s.moments_end - s.moments_begin);
  SPT_CHECK(m.size() == moments && v.size() == moments, "optimizer moments of ", m.size(), " and ", v.size(),
            " floats for a model that keeps the moments of parameters [", s.moments_begin, ", ", s.moments_end,
            "): upload its shard");
  s.m.upload(m.data(), m.size());
  s.v.upload(v.data(), v.size());
  s.optimizer_step = step;
}

void CudaModel::download_optimizer(std::vector<float>& m, std::vector<float>& v) const {
  const State& s = *state_;
  m.resize(s.m.size());
  v.resize(s.v.size());
  s.m.download(m.data(), m.size());
  s.v.download(v.data(), v.size());
}

int64_t CudaModel::optimizer_bytes() const {
  return static_cast<int64_t>((state_->m.size() + state_->v.size()) * sizeof(float));
}

void CudaModel::download_grads(std::vector<float>& grads) const {
  grads.resize(state_->P);
  state_->grads.download(grads.data(), grads.size());
}

void CudaModel::zero_grads() {
  SPT_CUDA_CHECK(cudaMemset(state_->grads.data(), 0, state_->grad_capacity * sizeof(float)));
}

double CudaModel::forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale,
                                   const GradientsReady* on_gradients_ready) {
  auto gradients_ready = [&](int64_t from) {
    if (on_gradients_ready != nullptr) (*on_gradients_ready)(from);
  };
  State& s = *state_;
  s.ensure_batch(B, true, recompute);
  const int L = s.config.layers, C = s.config.width;
  const int64_t N = s.rows();
  s.embed(tokens);
  const float* h_final = s.forward_blocks(dropout, true);
  s.head_forward(h_final);
  cross_entropy(s.at<float>(s.slots.logits), s.at<uint8_t>(s.slots.tokens), N, kVocab,
                loss_scale / static_cast<float>(N), s.at<float>(s.slots.losses), s.dtype, s.at(s.slots.dlogits));
  CudaSequenceOps ops = s.sequence_ops(dropout);
  head_backward(ops, s.weight_table, s.head_buffers(h_final), s.at(s.slots.dlogits), s.at(s.slots.dln),
                s.at<float>(s.slots.dh));
  gradients_ready(s.weight_table.ln_f.weight);
  const bool shared = s.slots.layers.size() == 1;
  for (int r = L - 1; r >= 0; --r) {
    if (shared && r != L - 1) s.layer_forward(r, s.residual(r), nullptr, s.layer_slots(r), dropout, true);
    s.layer_backward(r, s.residual(r), s.layer_slots(r), dropout);
    gradients_ready(s.weight_table.layers[r].ln1.weight);
  }
  PositionTables dtables;
  dtables.count = static_cast<int>(s.config.pos_sizes.size());
  for (int k = 0; k < dtables.count; ++k) {
    dtables.size[k] = s.config.pos_sizes[k];
    dtables.table[k] = s.g(s.weight_table.pos_emb[k]);
  }
  embedding_backward(s.at<uint8_t>(s.slots.tokens), B, s.config.ctx, C, s.at<float>(s.slots.dh),
                     s.g(s.weight_table.tok_emb), dtables);
  gradients_ready(0);
  return s.loss_sum(nullptr) / static_cast<double>(N);
}

void CudaModel::evaluate(const uint8_t* tokens, int B, float* losses) {
  State& s = *state_;
  s.ensure_batch(B, false, recompute);
  s.embed(tokens);
  s.head_forward(s.forward_blocks(DropoutContext{}, false));
  cross_entropy(s.at<float>(s.slots.logits), s.at<uint8_t>(s.slots.tokens), s.rows(), kVocab, 0.0f,
                s.at<float>(s.slots.losses), s.dtype, nullptr);
  s.loss_sum(losses);
}

double CudaModel::gradient_norm(double unscale) const {
  return std::sqrt(sum_of_squares(state_->grads.data(), state_->P)) / unscale;
}

double CudaModel::gradient_sum_of_squares(int64_t begin, int64_t end) const {
  SPT_CHECK(0 <= begin && begin <= end && end <= state_->P, "gradient range [", begin, ", ", end,
            ") lies outside the ", state_->P, " parameters");
  return sum_of_squares(state_->grads.data() + begin, end - begin);
}

namespace {

AdamWParams adamw_params(const TrainConfig& train, double lr, float grad_scale, int64_t step) {
  AdamWParams params;
  params.lr = static_cast<float>(lr);
  params.beta1 = static_cast<float>(train.beta1);
  params.beta2 = static_cast<float>(train.beta2);
  params.eps = static_cast<float>(train.eps);
  params.weight_decay = static_cast<float>(train.weight_decay);
  params.step = step;
  params.grad_scale = grad_scale;
  return params;
}

}  // namespace

void CudaModel::optimizer_step(const TrainConfig& train, double lr, float grad_scale) {
  State& s = *state_;
  SPT_CHECK(s.moments_begin == 0 && s.moments_end == s.P, "this model keeps the moments of parameters [",
            s.moments_begin, ", ", s.moments_end, ") only: step that shard");
  const AdamWParams params = adamw_params(train, lr, grad_scale, ++s.optimizer_step);
  adamw_step(s.segments.data(), s.segment_count, s.P, params, s.weights.data(), s.grads.data(), s.m.data(), s.v.data(),
             s.dtype, s.dtype == DType::f32 ? nullptr : s.compute.data());
}

void CudaModel::optimizer_step(const TrainConfig& train, double lr, float grad_scale, int64_t begin, int64_t end) {
  State& s = *state_;
  SPT_CHECK(s.moments_begin <= begin && begin <= end && end <= s.moments_end, "optimizer shard [", begin, ", ", end,
            ") lies outside the moments this model keeps, [", s.moments_begin, ", ", s.moments_end, ")");
  const AdamWParams params = adamw_params(train, lr, grad_scale, ++s.optimizer_step);
  if (begin == end) return;
  if (begin != s.shard_begin || end != s.shard_end) {
    std::vector<ParamSegment> shard;
    for (const ParamInfo& p : s.table->all()) {
      const int64_t first = std::max(begin, p.offset), last = std::min(end, p.offset + p.size);
      if (first < last) shard.push_back({first - begin, last - first, p.decay});
    }
    s.shard_segments = DeviceBuffer<ParamSegment>(shard.size());
    if (!shard.empty()) s.shard_segments.upload(shard.data(), shard.size());
    s.shard_segment_count = static_cast<int>(shard.size());
    s.shard_begin = begin;
    s.shard_end = end;
  }
  uint16_t* compute = s.dtype == DType::f32 ? nullptr : s.compute.data();
  const int64_t moment = begin - s.moments_begin;  // the moments start at moments_begin
  adamw_step(s.shard_segments.data(), s.shard_segment_count, end - begin, params, s.weights.data() + begin,
             s.grads.data() + begin, s.m.data() + moment, s.v.data() + moment, s.dtype,
             compute == nullptr ? nullptr : compute + begin);
}

CudaModel::DeviceParams CudaModel::device_params() {
  State& s = *state_;
  return {s.weights.data(), s.grads.data()};
}

void CudaModel::weights_changed() {
  State& s = *state_;
  if (s.dtype != DType::f32) convert_from_f32(s.weights.data(), s.P, s.dtype, s.compute.data());
}

}  // namespace spt::cuda
