// The residual block of docs/MODEL.md, its backward pass and the output layer, written
// once over an op table that each backend provides, so that the CPU model, the GPU model
// and the two key/value-cache decoders run the same ops in the same order:
//
//   a = LayerNorm_ln1(h_in); qkv = a @ qkv; att = attention(qkv); h_mid = h_in + dropout(att @ proj)
//   m = LayerNorm_ln2(h_mid); h_out = h_mid + dropout(gelu(m @ fc1) @ fc2)
//
// An op table `Ops` names the pointer type of its activations, `Ops::Act` (float* on the
// CPU; void* on the GPU, whose activations are fp32, bf16 or fp16), works on ops.rows()
// rows (N: B*T positions, or one per sequence when decoding), resolves the weights'
// offsets (model/weights.h) against its own buffers and provides:
//   config()                                   the ModelConfig
//   layernorm(x, Affine, y, mean, rstd)        y (N, C) = LayerNorm(x (N, C) fp32); mean, rstd (N) fp32
//   linear(x, Affine, in, out, y)              y (N, out) = x (N, in) @ weight^T + bias
//   logits(x, Affine, y)                       the same from (N, C) to fp32 y (N, V)
//   gelu(x, y, n)                              y (N, n) = gelu(x (N, n)); y may alias x
//   attention(layer, qkv, att, lse)            att (N, C) from qkv (N, 2*H*Dk + C): over whole
//                                              sequences (training, evaluation; lse (B, H, T) fp32), or
//                                              for one position against a key/value cache (decoding)
//   add_branch(layer, branch, x, residual, out)  out (N, C) fp32 = residual + dropout(x (N, C)) with the
//                                              mask of branch 0 (attention) or 1 (feed-forward); out may
//                                              alias residual
// and for the backward pass, which adds the weights' gradients into the backend's buffer:
//   branch_gradient(layer, branch, dh, scratch)  dh (N, C) fp32 through the branch's dropout mask, as an
//                                              activation: dh itself or scratch (N, C)
//   linear_backward(x, Affine, dy, in, out, dx)  dx (N, in) = dy (N, out) @ weight, overwritten
//   gelu_backward(x, dy, n, dx)                dx (N, n) = dy * gelu'(x); dx may alias dy
//   layernorm_backward(x, Affine, mean, rstd, dy, dx, accumulate)  dx (N, C) fp32, added when accumulate
//   attention_backward(layer, qkv, att, lse, datt, dqkv)  dqkv (N, 2*H*Dk + C) overwritten
// What stays with a backend: its buffers, which activations it keeps or recomputes, the
// precision of each buffer and the streams its ops run on.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/weights.h"
#include "ops/dropout.h"

namespace spt {

// Which random stream a dropout mask comes from (docs/MODEL.md, Dropout).
struct DropoutContext {
  uint64_t seed = 0;
  int64_t micro_step = 0;
  bool enabled = false;
};

// The dropout rate of a step: the config's while training with dropout, else 0.
inline float dropout_rate(const ModelConfig& config, const DropoutContext& dropout) {
  return dropout.enabled ? static_cast<float>(config.dropout) : 0.0f;
}

// What every op table holds besides its buffers: the config, the rows it works on and
// the step's dropout masks.
class OpTableBase {
 public:
  OpTableBase(const ModelConfig& config, int64_t rows, const DropoutContext& dropout)
      : config_(config), rows_(rows), dropout_(dropout), rate_(dropout_rate(config, dropout)) {}
  const ModelConfig& config() const { return config_; }
  int64_t rows() const { return rows_; }  // N

 protected:
  // H * Dk: the columns of q in qkv, where k starts; v starts at twice that.
  int64_t qk_columns() const { return int64_t{config_.heads} * config_.qk_dim(); }
  float rate() const { return rate_; }
  // The key of the mask of `branch` (0 attention, 1 feed-forward) of `layer`.
  uint64_t mask_key(int layer, int branch) const {
    return dropout_key(dropout_.seed, dropout_.micro_step, layer, branch);
  }

 private:
  const ModelConfig& config_;
  int64_t rows_;
  DropoutContext dropout_;
  float rate_;
};

// The buffers one block reads and writes. Decoding points several at one buffer
// (decode_forward), as the ops' aliasing rules allow.
template <typename Act>
struct BlockBuffers {
  const float* h_in = nullptr;  // (N, C) fp32 residual stream into the block
  Act ln1 = nullptr;            // (N, C) LayerNorm_ln1(h_in)
  float* mean1 = nullptr;       // (N)
  float* rstd1 = nullptr;       // (N)
  Act qkv = nullptr;            // (N, 2*H*Dk + C)
  Act att = nullptr;            // (N, C) attention output
  float* lse = nullptr;         // (B, H, T) its log-sum-exp; unused when decoding
  Act branch = nullptr;         // (N, C) a residual branch's output before dropout
  float* h_mid = nullptr;       // (N, C) fp32 residual stream after the attention branch
  Act ln2 = nullptr;            // (N, C) LayerNorm_ln2(h_mid)
  float* mean2 = nullptr;       // (N)
  float* rstd2 = nullptr;       // (N)
  Act fc1 = nullptr;            // (N, F) before the activation
  Act act = nullptr;            // (N, F) after it
  float* h_out = nullptr;       // (N, C) fp32 block output; null: stop after act, all the
                                // backward pass needs when it recomputes a block
};

// The backward pass's scratch; dh carries the residual stream's gradient through.
template <typename Act>
struct BlockGradients {
  float* dh = nullptr;      // (N, C) fp32: at the block's output on entry, at its input on return
  Act dbranch = nullptr;    // (N, C) a branch's output gradient through its dropout mask
  Act dff = nullptr;        // (N, F)
  Act dln = nullptr;        // (N, C) gradient at a LayerNorm output
  Act datt = nullptr;       // (N, C)
  Act dqkv = nullptr;       // (N, 2*H*Dk + C)
};

// The final LayerNorm and the output layer.
template <typename Act>
struct HeadBuffers {
  const float* h = nullptr;  // (N, C) fp32 final residual stream
  Act lnf = nullptr;         // (N, C) LayerNorm_ln_f(h)
  float* mean = nullptr;     // (N)
  float* rstd = nullptr;     // (N)
  float* logits = nullptr;   // (N, V) fp32
};

template <typename Ops>
void block_forward(Ops& ops, const LayerWeights& w, int layer, const BlockBuffers<typename Ops::Act>& b) {
  const ModelConfig& c = ops.config();
  const int C = c.width, F = c.ff_width(), QKV = c.qkv_width();
  ops.layernorm(b.h_in, w.ln1, b.ln1, b.mean1, b.rstd1);
  ops.linear(b.ln1, w.qkv, C, QKV, b.qkv);
  ops.attention(layer, b.qkv, b.att, b.lse);
  ops.linear(b.att, w.proj, C, C, b.branch);
  ops.add_branch(layer, 0, b.branch, b.h_in, b.h_mid);

  ops.layernorm(b.h_mid, w.ln2, b.ln2, b.mean2, b.rstd2);
  ops.linear(b.ln2, w.fc1, C, F, b.fc1);
  ops.gelu(b.fc1, b.act, F);
  if (b.h_out == nullptr) return;
  ops.linear(b.act, w.fc2, F, C, b.branch);
  ops.add_branch(layer, 1, b.branch, b.h_mid, b.h_out);
}

// b holds the block's forward activations (h_out unused); parameter gradients are added
// into the op table's gradient buffer.
template <typename Ops>
void block_backward(Ops& ops, const LayerWeights& w, int layer, const BlockBuffers<typename Ops::Act>& b,
                    const BlockGradients<typename Ops::Act>& g) {
  const ModelConfig& c = ops.config();
  const int C = c.width, F = c.ff_width(), QKV = c.qkv_width();
  // Feed-forward branch; dh becomes the gradient at h_mid.
  ops.linear_backward(b.act, w.fc2, ops.branch_gradient(layer, 1, g.dh, g.dbranch), F, C, g.dff);
  ops.gelu_backward(b.fc1, g.dff, F, g.dff);
  ops.linear_backward(b.ln2, w.fc1, g.dff, C, F, g.dln);
  ops.layernorm_backward(b.h_mid, w.ln2, b.mean2, b.rstd2, g.dln, g.dh, true);

  // Attention branch; dh becomes the gradient at h_in.
  ops.linear_backward(b.att, w.proj, ops.branch_gradient(layer, 0, g.dh, g.dbranch), C, C, g.datt);
  ops.attention_backward(layer, b.qkv, b.att, b.lse, g.datt, g.dqkv);
  ops.linear_backward(b.ln1, w.qkv, g.dqkv, C, QKV, g.dln);
  ops.layernorm_backward(b.h_in, w.ln1, b.mean1, b.rstd1, g.dln, g.dh, true);
}

template <typename Ops>
void head_forward(Ops& ops, const WeightTable& w, const HeadBuffers<typename Ops::Act>& b) {
  ops.layernorm(b.h, w.ln_f, b.lnf, b.mean, b.rstd);
  ops.logits(b.lnf, w.head, b.logits);
}

// dlogits (N, V): the loss gradient at the logits; dh (N, C) fp32 is overwritten with the
// gradient at the final residual stream, dln (N, C) is scratch.
template <typename Ops>
void head_backward(Ops& ops, const WeightTable& w, const HeadBuffers<typename Ops::Act>& b,
                   typename Ops::Act dlogits, typename Ops::Act dln, float* dh) {
  ops.linear_backward(b.lnf, w.head, dlogits, ops.config().width, kVocab, dln);
  ops.layernorm_backward(b.h, w.ln_f, b.mean, b.rstd, dln, dh, false);
}

// The buffers of a decoding step: one row per sequence (N = S), reused by every layer.
template <typename Act>
struct DecodeBuffers {
  float* h = nullptr;       // (S, C) fp32 residual stream, updated in place
  Act norm = nullptr;       // (S, C) every LayerNorm output
  float* mean = nullptr;    // (S)
  float* rstd = nullptr;    // (S)
  Act qkv = nullptr;        // (S, 2*H*Dk + C)
  Act att = nullptr;        // (S, C)
  Act branch = nullptr;     // (S, C) both branches' outputs
  Act ff = nullptr;         // (S, F) fc1's output and, in place, its activation
  float* logits = nullptr;  // (S, V) fp32
};

// One position of every sequence: d.h (S, C) holds the rows' embeddings on entry; the
// logits (S, V) are written. The op table's attention appends each layer's new keys and
// values to its cache and attends to the cached ones.
template <typename Ops>
void decode_forward(Ops& ops, const WeightTable& w, const DecodeBuffers<typename Ops::Act>& d) {
  const BlockBuffers<typename Ops::Act> block{.h_in = d.h, .ln1 = d.norm, .mean1 = d.mean, .rstd1 = d.rstd,
                                              .qkv = d.qkv, .att = d.att, .lse = nullptr, .branch = d.branch,
                                              .h_mid = d.h, .ln2 = d.norm, .mean2 = d.mean, .rstd2 = d.rstd,
                                              .fc1 = d.ff, .act = d.ff, .h_out = d.h};
  for (int r = 0; r < ops.config().layers; ++r) block_forward(ops, w.layers[r], r, block);
  head_forward(ops, w, HeadBuffers<typename Ops::Act>{d.h, d.norm, d.mean, d.rstd, d.logits});
}

}  // namespace spt
