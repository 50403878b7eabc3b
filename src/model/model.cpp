// The model's buffers and forward pass (docs/MODEL.md): embedding, residual blocks,
// final LayerNorm and output layer; per-token evaluation and logits.
#include <algorithm>

#include "core/error.h"
#include "model/model.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/linear.h"

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

float Model::dropout_rate(const DropoutContext& dropout) const {
  return dropout.enabled ? static_cast<float>(config_.dropout) : 0.0f;
}

void Model::layer_forward(int r, int B, const float* h_in, float* h_out, LayerActivations& acts,
                          const DropoutContext& dropout) {
  const LayerWeights& p = weight_table_.layers[r];
  const int64_t N = int64_t{B} * config_.ctx;
  const int C = config_.width, F = config_.ff_width(), QKV = config_.qkv_width();
  const int H = config_.heads, Dk = config_.qk_dim();
  const float rate = dropout_rate(dropout);

  cpu::layernorm_forward(h_in, w(p.ln1.weight), w(p.ln1.bias), N, C, acts.ln1.data(), acts.mean1.data(),
                         acts.rstd1.data());
  cpu::linear_forward(acts.ln1.data(), w(p.qkv.weight), w(p.qkv.bias), N, C, QKV, acts.qkv.data());
  AttentionShape shape{B, config_.ctx, H, Dk, config_.head_dim(), QKV, QKV, QKV, C};
  const float* qkv = acts.qkv.data();
  cpu::attention_forward(plans_[r], shape, qkv, qkv + H * Dk, qkv + 2 * H * Dk, acts.att.data(), acts.lse.data());
  cpu::linear_forward(acts.att.data(), w(p.proj.weight), w(p.proj.bias), N, C, C, branch_.data());
  cpu::dropout_add(dropout_key(dropout.seed, dropout.micro_step, r, 0), rate, branch_.data(), h_in, N * C,
                   acts.h_mid.data());

  cpu::layernorm_forward(acts.h_mid.data(), w(p.ln2.weight), w(p.ln2.bias), N, C, acts.ln2.data(), acts.mean2.data(),
                         acts.rstd2.data());
  cpu::linear_forward(acts.ln2.data(), w(p.fc1.weight), w(p.fc1.bias), N, C, F, acts.fc1.data());
  cpu::gelu_forward(acts.fc1.data(), N * F, acts.act.data());
  if (h_out == nullptr) return;
  cpu::linear_forward(acts.act.data(), w(p.fc2.weight), w(p.fc2.bias), N, F, C, branch_.data());
  cpu::dropout_add(dropout_key(dropout.seed, dropout.micro_step, r, 1), rate, branch_.data(), acts.h_mid.data(),
                   N * C, h_out);
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
  const int64_t N = int64_t{B} * config_.ctx;
  const int C = config_.width;
  cpu::layernorm_forward(h, w(weight_table_.ln_f.weight), w(weight_table_.ln_f.bias), N, C, lnf_.data(), meanf_.data(),
                         rstdf_.data());
  cpu::linear_forward(lnf_.data(), w(weight_table_.head.weight), w(weight_table_.head.bias), N, C, kVocab, logits);
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
