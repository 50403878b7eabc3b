// Training step: forward over all blocks keeping the residual stream, loss and its
// gradient at the output, then the blocks in reverse. Under recomputation every block
// but the last is re-run from its stored input into the one shared LayerActivations
// just before its backward pass (the last block's activations are still there from
// the forward pass); the same code computes the same bits either way.
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"

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
  CpuSequenceOps ops = sequence_ops(B, dropout);
  head_backward(ops, weight_table_, head_buffers(h_final, logits_.data()), logits_.data(), dln_.data(), dh_.data());
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
  CpuSequenceOps ops = sequence_ops(B, dropout);
  block_backward(ops, weight_table_.layers[r], r, block_buffers(acts, h_in, nullptr), block_gradients(dh));
}

}  // namespace spt
