// The Sparse Transformer of docs/MODEL.md on the CPU backend: forward, backward with
// optional recomputation, and per-token evaluation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/block.h"
#include "model/config.h"
#include "model/cpu_ops.h"
#include "model/params.h"
#include "model/weights.h"
#include "pattern/pattern.h"

namespace spt {

// Activations of one residual block. Under recomputation one set is shared by all
// layers and refilled from the layer's input in the backward pass.
struct LayerActivations {
  std::vector<float> ln1;           // (N, C)
  std::vector<float> mean1, rstd1;  // (N)
  std::vector<float> qkv;           // (N, 2*H*Dk + C)
  std::vector<float> att;           // (N, C)
  std::vector<float> lse;           // (B, H, T)
  std::vector<float> h_mid;         // (N, C) residual after the attention branch
  std::vector<float> ln2;           // (N, C)
  std::vector<float> mean2, rstd2;  // (N)
  std::vector<float> fc1;           // (N, F) before the activation
  std::vector<float> act;           // (N, F) after the activation
  void resize(int64_t N, const ModelConfig& c);
  int64_t bytes() const;
};

// Told during a backward that the gradients [ready_from, P) are final: the backward
// finishes them from the end of the parameter buffer (head and ln_f, then the blocks from
// the last, the embeddings last with ready_from 0), so data-parallel training can reduce
// them while the rest of the backward runs (dist/gradient_reducer.h).
using GradientsReady = std::function<void(int64_t ready_from)>;

class Model {
 public:
  explicit Model(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const ParamTable& params() const { return table_; }
  const WeightTable& weight_table() const { return weight_table_; }
  std::vector<float>& weights() { return weights_; }
  const std::vector<float>& weights() const { return weights_; }
  std::vector<float>& grads() { return grads_; }
  float* param(const std::string& name) { return weights_.data() + table_.find(name).offset; }

  // The paper's initialization (docs/MODEL.md), from a counter-based stream.
  void init(uint64_t seed);
  void zero_grads();

  // Forward and backward on tokens (B, T). Adds d(loss * loss_scale)/d(params) into
  // grads() and returns the mean loss in nats. on_gradients_ready (may be null) hears of
  // the final gradients as the backward goes.
  double forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale,
                          const GradientsReady* on_gradients_ready = nullptr);

  // Forward without dropout; writes the loss of every token in nats to losses (B, T).
  void evaluate(const uint8_t* tokens, int B, float* losses);

  // Forward without dropout; writes the logits of positions [0, T) to logits (B, T, V).
  void logits(const uint8_t* tokens, int B, float* logits);

  bool recompute = true;
  int64_t activation_bytes() const;  // bytes held for the current batch size

 private:
  // Sizes the buffers for batch B (N = B*T rows); training adds the backward scratch and
  // the per-layer activations when recompute is off. Reallocates only when B grows or
  // the kind of buffers changes.
  void ensure_batch(int B, bool training);
  // residual slot 0 (N, C) = input embedding of tokens (B, T).
  void embed(const uint8_t* tokens, int B);
  // One residual block: h_out (N, C) = block_r(h_in (N, C)), filling acts. With
  // h_out == nullptr the block stops after the activation of the feed-forward branch
  // (all the backward pass needs when recomputing).
  void layer_forward(int r, int B, const float* h_in, float* h_out, LayerActivations& acts,
                     const DropoutContext& dropout);
  // dh (N, C): gradient with respect to the block's output on entry, to its input
  // h_in (N, C) on return; parameter gradients are added into grads().
  void layer_backward(int r, int B, const float* h_in, LayerActivations& acts, const DropoutContext& dropout,
                      float* dh);
  // lnf_ = LayerNorm_ln_f(h (N, C)); logits (N, V) = lnf_ @ head.weight^T + head.bias.
  void head_forward(int B, const float* h, float* logits);
  // All blocks from residual slot 0; returns the final residual stream (N, C). With
  // keep_residuals layer r writes slot r + 1, else the two slots alternate.
  const float* forward_blocks(int B, const DropoutContext& dropout, bool keep_residuals);
  // The op table of batch B's forward and backward over whole sequences.
  CpuSequenceOps sequence_ops(int B, const DropoutContext& dropout);
  // Where block_forward and block_backward find a layer's activations (model/block.h).
  BlockBuffers<float*> block_buffers(LayerActivations& acts, const float* h_in, float* h_out);
  BlockGradients<float*> block_gradients(float* dh);
  HeadBuffers<float*> head_buffers(const float* h, float* logits);
  float* residual(int slot) { return residual_.data() + slot * rows() * config_.width; }
  int64_t rows() const { return int64_t{batch_} * config_.ctx; }  // N
  const float* w(int64_t offset) const { return weights_.data() + offset; }
  float* g(int64_t offset) { return grads_.data() + offset; }

  ModelConfig config_;
  ParamTable table_;
  std::vector<float> weights_, grads_;
  WeightTable weight_table_;
  std::vector<AttentionPlan> plans_;  // (L)

  int batch_ = 0;                       // B the buffers are sized for
  bool training_buffers_ = false;       // backward scratch and the (L + 1) residual slots exist
  std::vector<float> residual_;         // (L + 1, N, C) when training, else (2, N, C)
  std::vector<LayerActivations> acts_;  // (L) when training without recompute, else (1)
  std::vector<float> branch_;           // (N, C) output of a residual branch before dropout
  std::vector<float> lnf_, meanf_, rstdf_;  // (N, C), (N), (N)
  std::vector<float> logits_;           // (N, V); the logit gradients overwrite it
  std::vector<float> losses_;           // (N)
  std::vector<float> dh_;               // (N, C) gradient of the residual stream
  std::vector<float> dbranch_;          // (N, C) branch gradient after the dropout mask
  std::vector<float> dln_;              // (N, C) gradient of a LayerNorm output
  std::vector<float> datt_;             // (N, C)
  std::vector<float> dqkv_;             // (N, 2*H*Dk + C)
  std::vector<float> dff_;              // (N, F)
};

// The named tensors of a model of this config, in checkpoint order (docs/MODEL.md), with
// their offsets into the weight buffer; validates the config and allocates no weights.
ParamTable model_param_table(const ModelConfig& config);

// The pattern of a model config, for the attention plans.
Pattern model_pattern(const ModelConfig& config);

}  // namespace spt
