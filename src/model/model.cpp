// The model's buffers and forward pass (docs/MODEL.md): embedding, the residual blocks
// and the output layer of model/block.h over the CPU op table; per-token evaluation
// and logits.
#include <algorithm>

#include "core/error.h"
#include "model/model.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"

namespace spt {

void LayerActivations::resize(int64_t N, const ModelConfig& c) {
  const int64_t C = c.width, F = c.ff_width();
  ln1.resize(N * C);
  mean1.resize(N);
  rstd1.resize(N);
  qkv.resize(N * c.qkv_width());
  att.resize(N * C);
  lse.resize(N * c.heads);
  h_mid.resize(N * C);
  ln2.resize(N * C);
  mean2.resize(N);
  rstd2.resize(N);
  fc1.resize(N * F);
  act.resize(N * F);
}

int64_t LayerActivations::bytes() const {
  const size_t floats = ln1.size() + mean1.size() + rstd1.size() + qkv.size() + att.size() + lse.size() +
                        h_mid.size() + ln2.size() + mean2.size() + rstd2.size() + fc1.size() + act.size();
  return static_cast<int64_t>(floats * sizeof(float));
}

void Model::ensure_batch(int B, bool training) {
  SPT_CHECK(B >= 1, "batch size ", B, " must be at least 1");
  const bool training_now = training_buffers_ || training;
  const size_t wanted_acts = training_now && !recompute ? config_.layers : 1;
  if (B == batch_ && training_now == training_buffers_ && acts_.size() == wanted_acts) return;
  if (B != batch_) {
    // Drop everything of the old size first so that peak memory is one batch's worth.
    residual_ = {};
    acts_.clear();
    branch_ = lnf_ = meanf_ = rstdf_ = logits_ = losses_ = {};
    dh_ = dbranch_ = dln_ = datt_ = dqkv_ = dff_ = {};
  }
  batch_ = B;
  training_buffers_ = training_now;
  const int64_t N = rows(), C = config_.width;
  residual_.resize((training_buffers_ ? config_.layers + 1 : 2) * N * C);
  acts_.resize(wanted_acts);
  for (LayerActivations& a : acts_) a.resize(N, config_);
  branch_.resize(N * C);
  lnf_.resize(N * C);
  meanf_.resize(N);
  rstdf_.resize(N);
  logits_.resize(N * kVocab);
  losses_.resize(N);
  if (training_buffers_) {
    dh_.resize(N * C);
    dbranch_.resize(N * C);
    dln_.resize(N * C);
    datt_.resize(N * C);
    dqkv_.resize(N * config_.qkv_width());
    dff_.resize(N * config_.ff_width());
  }
}

int64_t Model::activation_bytes() const {
  int64_t bytes = 0;
  for (const LayerActivations& a : acts_) bytes += a.bytes();
  for (const std::vector<float>* buffer : {&residual_, &branch_, &lnf_, &meanf_, &rstdf_, &logits_, &losses_, &dh_,
                                           &dbranch_, &dln_, &datt_, &dqkv_, &dff_})
    bytes += static_cast<int64_t>(buffer->size() * sizeof(float));
  return bytes;
}

void Model::embed(const uint8_t* tokens, int B) {
  std::vector<const float*> tables;
  for (int64_t offset : weight_table_.pos_emb) tables.push_back(w(offset));
  cpu::embedding_forward(tokens, B, config_.ctx, config_.width, w(weight_table_.tok_emb), tables, config_.pos_sizes,
                         residual(0));
}

CpuSequenceOps Model::sequence_ops(int B, const DropoutContext& dropout) {
  return CpuSequenceOps(config_, weights_.data(), grads_.data(), plans_, B, dropout);
}

BlockBuffers<float*> Model::block_buffers(LayerActivations& a, const float* h_in, float* h_out) {
  return {.h_in = h_in, .ln1 = a.ln1.data(), .mean1 = a.mean1.data(), .rstd1 = a.rstd1.data(), .qkv = a.qkv.data(),
          .att = a.att.data(), .lse = a.lse.data(), .branch = branch_.data(), .h_mid = a.h_mid.data(),
          .ln2 = a.ln2.data(), .mean2 = a.mean2.data(), .rstd2 = a.rstd2.data(), .fc1 = a.fc1.data(),
          .act = a.act.data(), .h_out = h_out};
}

BlockGradients<float*> Model::block_gradients(float* dh) {
  return {.dh = dh, .dbranch = dbranch_.data(), .dff = dff_.data(), .dln = dln_.data(), .datt = datt_.data(),
          .dqkv = dqkv_.data()};
}

HeadBuffers<float*> Model::head_buffers(const float* h, float* logits) {
  return {.h = h, .lnf = lnf_.data(), .mean = meanf_.data(), .rstd = rstdf_.data(), .logits = logits};
}

void Model::layer_forward(int r, int B, const float* h_in, float* h_out, LayerActivations& acts,
                          const DropoutContext& dropout) {
  CpuSequenceOps ops = sequence_ops(B, dropout);
  block_forward(ops, weight_table_.layers[r], r, block_buffers(acts, h_in, h_out));
}

const float* Model::forward_blocks(int B, const DropoutContext& dropout, bool keep_residuals) {
  const int L = config_.layers;
  for (int r = 0; r < L; ++r) {
    const int in = keep_residuals ? r : r % 2, out = keep_residuals ? r + 1 : (r + 1) % 2;
    layer_forward(r, B, residual(in), residual(out), acts_[acts_.size() == 1 ? 0 : r], dropout);
  }
  return residual(keep_residuals ? L : L % 2);
}

void Model::head_forward(int B, const float* h, float* logits) {
  CpuSequenceOps ops = sequence_ops(B, DropoutContext{});
  spt::head_forward(ops, weight_table_, head_buffers(h, logits));
}

void Model::evaluate(const uint8_t* tokens, int B, float* losses) {
  ensure_batch(B, false);
  embed(tokens, B);
  head_forward(B, forward_blocks(B, DropoutContext{}, false), logits_.data());
  cpu::cross_entropy_forward(logits_.data(), tokens, rows(), kVocab, losses);
}

void Model::logits(const uint8_t* tokens, int B, float* logits) {
  ensure_batch(B, false);
  embed(tokens, B);
  head_forward(B, forward_blocks(B, DropoutContext{}, false), logits);
}

}  // namespace spt
