// The CPU op table of the block (model/block.h): fp32 activations on the host, the weights
// read from and their gradients added into the model's host buffers. CpuOps has every op
// but attention; CpuSequenceOps adds the attention over whole sequences of the model's
// forward and backward, and the key/value-cache decoder (model/sampler.cpp) its own.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/block.h"
#include "model/config.h"
#include "model/weights.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/dropout.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "pattern/pattern.h"

namespace spt {

class CpuOps : public OpTableBase {
 public:
  using Act = float*;
  // weights, grads: (P) the model's buffers, indexed by the weight table's offsets (grads
  // may be null when nothing runs backward); rows: N.
  CpuOps(const ModelConfig& config, const float* weights, float* grads, int64_t rows, const DropoutContext& dropout)
      : OpTableBase(config, rows, dropout), weights_(weights), grads_(grads) {}

  void layernorm(const float* x, Affine p, float* y, float* mean, float* rstd) const {
    cpu::layernorm_forward(x, w(p.weight), w(p.bias), rows(), config().width, y, mean, rstd);
  }
  void linear(const float* x, Affine p, int in, int out, float* y) const {
    cpu::linear_forward(x, w(p.weight), w(p.bias), rows(), in, out, y);
  }
  void logits(const float* x, Affine p, float* y) const { linear(x, p, config().width, kVocab, y); }
  void gelu(const float* x, float* y, int n) const { cpu::gelu_forward(x, rows() * n, y); }
  void add_branch(int layer, int branch, const float* x, const float* residual, float* out) const {
    cpu::dropout_add(mask_key(layer, branch), rate(), x, residual, rows() * config().width, out);
  }

  const float* branch_gradient(int layer, int branch, const float* dh, float* scratch) const {
    if (rate() == 0.0f) return dh;
    std::copy(dh, dh + rows() * config().width, scratch);
    cpu::dropout_apply(mask_key(layer, branch), rate(), rows() * config().width, scratch);
    return scratch;
  }
  void linear_backward(const float* x, Affine p, const float* dy, int in, int out, float* dx) const {
    cpu::linear_backward(x, w(p.weight), dy, rows(), in, out, dx, false, g(p.weight), g(p.bias));
  }
  void gelu_backward(const float* x, const float* dy, int n, float* dx) const {
    cpu::gelu_backward(x, dy, rows() * n, dx);
  }
  void layernorm_backward(const float* x, Affine p, const float* mean, const float* rstd, const float* dy, float* dx,
                          bool accumulate) const {
    cpu::layernorm_backward(x, w(p.weight), mean, rstd, dy, rows(), config().width, dx, accumulate, g(p.weight),
                            g(p.bias));
  }

 private:
  const float* w(int64_t offset) const { return weights_ + offset; }
  float* g(int64_t offset) const { return grads_ + offset; }

  const float* weights_;  // (P)
  float* grads_;          // (P)
};

// Attention over whole sequences of B rows of T positions, one plan per layer; q, k and v
// are the column ranges [0, H*Dk), [H*Dk, 2*H*Dk) and [2*H*Dk, 2*H*Dk + C) of qkv.
class CpuSequenceOps : public CpuOps {
 public:
  // plans: (L); the op table works on B * T rows.
  CpuSequenceOps(const ModelConfig& c, const float* weights, float* grads, const std::vector<AttentionPlan>& plans,
                 int B, const DropoutContext& dropout)
      : CpuOps(c, weights, grads, int64_t{B} * c.ctx, dropout), plans_(plans),
        shape_{B, c.ctx, c.heads, c.qk_dim(), c.head_dim(), c.qkv_width(), c.qkv_width(), c.qkv_width(), c.width} {}

  void attention(int layer, const float* qkv, float* att, float* lse) const {
    const int64_t K = qk_columns();
    cpu::attention_forward(plans_[layer], shape_, qkv, qkv + K, qkv + 2 * K, att, lse);
  }
  void attention_backward(int layer, const float* qkv, const float* att, const float* lse, const float* datt,
                          float* dqkv) const {
    const int64_t K = qk_columns();
    cpu::attention_backward(plans_[layer], shape_, qkv, qkv + K, qkv + 2 * K, att, lse, datt, dqkv, dqkv + K,
                            dqkv + 2 * K);
  }

 private:
  const std::vector<AttentionPlan>& plans_;  // (L)
  AttentionShape shape_;
};

}  // namespace spt
