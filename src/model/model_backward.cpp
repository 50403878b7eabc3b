// Training step: forward over all blocks keeping the residual stream, loss and its
// gradient at the output, then the blocks in reverse. Under recomputation every block
// but the last is re-run from its stored input into the one shared LayerActivations
// just before its backward pass (the last block's activations are still there from
// the forward pass); the same code computes the same bits either way.
#include <algorithm>
#include <vector>

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

double Model::forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale,
                               const GradientsReady* on_gradients_ready) {
  auto gradients_ready = [&](int64_t from) {
    if (on_gradients_ready != nullptr) (*on_gradients_ready)(from);
  };
  ensure_batch(B, true);
  const int L = config_.layers, C = config_.width;
  const int64_t N = rows();
  embed(tokens, B);
  const float* h_final = forward_blocks(B, dropout, true);

  head_forward(B, h_final, logits_.data());
  const double loss_sum = cpu::cross_entropy_forward_backward(logits_.data(), tokens, N, kVocab,
                                                              loss_scale / static_cast<float>(N), losses_.data(),
                                                              logits_.data());
  cpu::linear_backward(lnf_.data(), w(weight_table_.head.weight), logits_.data(), N, C, kVocab, dln_.data(), false,
                       g(weight_table_.head.weight), g(weight_table_.head.bias));
  cpu::layernorm_backward(h_final, w(weight_table_.ln_f.weight), meanf_.data(), rstdf_.data(), dln_.data(), N, C,
                          dh_.data(), false, g(weight_table_.ln_f.weight), g(weight_table_.ln_f.bias));
  gradients_ready(weight_table_.ln_f.weight);

  for (int r = L - 1; r >= 0; --r) {
    LayerActivations& acts = acts_[acts_.size() == 1 ? 0 : r];
    if (acts_.size() == 1 && r != L - 1) layer_forward(r, B, residual(r), nullptr, acts, dropout);
    layer_backward(r, B, residual(r), acts, dropout, dh_.data());
    gradients_ready(weight_table_.layers[r].ln1.weight);
  }

  std::vector<float*> dtables;
  for (int64_t offset : weight_table_.pos_emb) dtables.push_back(g(offset));
  cpu::embedding_backward(tokens, B, config_.ctx, C, dh_.data(), g(weight_table_.tok_emb), dtables, config_.pos_sizes);
  gradients_ready(0);
  return loss_sum / static_cast<double>(N);
}

void Model::layer_backward(int r, int B, const float* h_in, LayerActivations& acts, const DropoutContext& dropout,
                           float* dh) {
  const LayerWeights& p = weight_table_.layers[r];
  const int64_t N = int64_t{B} * config_.ctx;
  const int C = config_.width, F = config_.ff_width(), QKV = config_.qkv_width();
  const int H = config_.heads, Dk = config_.qk_dim();
  const float rate = dropout_rate(dropout);
  // The gradient of a branch's output: dh through the branch's dropout mask.
  auto branch_gradient = [&](int branch) -> const float* {
    if (rate == 0.0f) return dh;
    std::copy(dh, dh + N * C, dbranch_.data());
    cpu::dropout_apply(dropout_key(dropout.seed, dropout.micro_step, r, branch), rate, N * C, dbranch_.data());
    return dbranch_.data();
  };

  // Feed-forward branch; dh becomes the gradient at h_mid.
  cpu::linear_backward(acts.act.data(), w(p.fc2.weight), branch_gradient(1), N, F, C, dff_.data(), false,
                       g(p.fc2.weight), g(p.fc2.bias));
  cpu::gelu_backward(acts.fc1.data(), dff_.data(), N * F, dff_.data());
  cpu::linear_backward(acts.ln2.data(), w(p.fc1.weight), dff_.data(), N, C, F, dln_.data(), false, g(p.fc1.weight),
                       g(p.fc1.bias));
  cpu::layernorm_backward(acts.h_mid.data(), w(p.ln2.weight), acts.mean2.data(), acts.rstd2.data(), dln_.data(), N, C,
                          dh, true, g(p.ln2.weight), g(p.ln2.bias));

  // Attention branch; dh becomes the gradient at h_in.
  cpu::linear_backward(acts.att.data(), w(p.proj.weight), branch_gradient(0), N, C, C, datt_.data(), false,
                       g(p.proj.weight), g(p.proj.bias));
  AttentionShape shape{B, config_.ctx, H, Dk, config_.head_dim(), QKV, QKV, QKV, C};
  const float* qkv = acts.qkv.data();
  float* dqkv = dqkv_.data();
  cpu::attention_backward(plans_[r], shape, qkv, qkv + H * Dk, qkv + 2 * H * Dk, acts.att.data(), acts.lse.data(),
                          datt_.data(), dqkv, dqkv + H * Dk, dqkv + 2 * H * Dk);
  cpu::linear_backward(acts.ln1.data(), w(p.qkv.weight), dqkv, N, C, QKV, dln_.data(), false, g(p.qkv.weight),
                       g(p.qkv.bias));
  cpu::layernorm_backward(h_in, w(p.ln1.weight), acts.mean1.data(), acts.rstd1.data(), dln_.data(), N, C, dh, true,
                          g(p.ln1.weight), g(p.ln1.bias));
}

}  // namespace spt
