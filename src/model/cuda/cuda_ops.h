// The GPU op table of the block (model/block.h): activations of the precision's type on
// the device, LayerNorm parameters and biases read from the fp32 master weights, matrix
// weights from their copy in the activation type (the master weights themselves in fp32),
// gradients added into the fp32 device buffer. Every op runs on the cuBLASLt context's
// stream. CudaOps has every op but attention; CudaSequenceOps adds the attention over
// whole sequences of the model's forward and backward, and the GPU decoder
// (model/cuda/cuda_sampler.cpp) its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/block.h"
#include "model/config.h"
#include "model/weights.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/cuda/attention_plan.h"
#include "ops/dropout.h"
#include "ops/dtype.h"
#include "ops/layernorm.h"
#include "ops/linear.h"

namespace spt::cuda {

class CudaOps : public OpTableBase {
 public:
  using Act = void*;
  // weights: (P) fp32 master weights; compute: (P) their copy in dtype (null for fp32);
  // grads: (P) or null when nothing runs backward; all indexed by the weight table's offsets.
  CudaOps(const ModelConfig& config, BlasContext& blas, DType dtype, const float* weights, const uint16_t* compute,
          float* grads, int64_t rows, const DropoutContext& dropout)
      : OpTableBase(config, rows, dropout), blas_(blas), dtype_(dtype), weights_(weights), compute_(compute),
        grads_(grads) {}

  DType dtype() const { return dtype_; }
  CUstream_st* stream() const { return blas_.stream(); }
  // Element `index` of a buffer of the activation type.
  const void* element(const void* base, int64_t index) const {
    return static_cast<const unsigned char*>(base) + index * static_cast<int64_t>(dtype_size(dtype_));
  }
  void* element(void* base, int64_t index) const {
    return static_cast<unsigned char*>(base) + index * static_cast<int64_t>(dtype_size(dtype_));
  }

  void layernorm(const float* x, Affine p, void* y, float* mean, float* rstd) const {
    layernorm_forward(x, master(p.weight), master(p.bias), rows(), config().width, dtype_, y, mean, rstd, stream());
  }
  void linear(const void* x, Affine p, int in, int out, void* y) const {
    linear_forward(blas_, x, matrix(p.weight), master(p.bias), rows(), in, out, dtype_, dtype_, y);
  }
  void logits(const void* x, Affine p, float* y) const {
    linear_forward(blas_, x, matrix(p.weight), master(p.bias), rows(), config().width, kVocab, dtype_, DType::f32, y);
  }
  void gelu(const void* x, void* y, int n) const { gelu_forward(x, rows() * n, dtype_, y, stream()); }
  void add_branch(int layer, int branch, const void* x, const float* residual, float* out) const {
    dropout_add(mask_key(layer, branch), rate(), x, dtype_, residual, rows() * config().width, out, stream());
  }

  // Without dropout an fp32 dh is already the activation the products read.
  const void* branch_gradient(int layer, int branch, const float* dh, void* scratch) const {
    if (dtype_ == DType::f32 && rate() == 0.0f) return dh;
    dropout_convert(mask_key(layer, branch), rate(), dh, rows() * config().width, dtype_, scratch, stream());
    return scratch;
  }
  void linear_backward(const void* x, Affine p, const void* dy, int in, int out, void* dx) const {
    cuda::linear_backward(blas_, x, matrix(p.weight), dy, rows(), in, out, dtype_, dx, false, grad(p.weight),
                          grad(p.bias));
  }
  void gelu_backward(const void* x, const void* dy, int n, void* dx) const {
    cuda::gelu_backward(x, dy, rows() * n, dtype_, dx, stream());
  }
  void layernorm_backward(const float* x, Affine p, const float* mean, const float* rstd, const void* dy, float* dx,
                          bool accumulate) const {
    cuda::layernorm_backward(x, master(p.weight), mean, rstd, dy, rows(), config().width, dtype_, dx, accumulate,
                             grad(p.weight), grad(p.bias), stream());
  }

 private:
  const float* master(int64_t offset) const { return weights_ + offset; }
  // A weight as the matrix products read it.
  const void* matrix(int64_t offset) const {
    if (dtype_ == DType::f32) return weights_ + offset;
    return compute_ + offset;
  }
  float* grad(int64_t offset) const { return grads_ + offset; }

  BlasContext& blas_;
  DType dtype_;
  const float* weights_;     // (P)
  const uint16_t* compute_;  // (P)
  float* grads_;             // (P)
};

// Attention over whole sequences, one device plan per layer, with the scratch the caller
// planned for it (attention_workspace_bytes); q, k and v are the column ranges [0, H*Dk),
// [H*Dk, 2*H*Dk) and [2*H*Dk, 2*H*Dk + C) of qkv.
class CudaSequenceOps : public CudaOps {
 public:
  CudaSequenceOps(const CudaOps& ops, const std::vector<DeviceAttentionPlan>& plans, const AttentionShape& shape,
                  void* workspace, size_t workspace_bytes)
      : CudaOps(ops), plans_(plans), shape_(shape), workspace_(workspace), workspace_bytes_(workspace_bytes) {}

  // Set while recomputing a block whose attention output and lse were kept from the
  // forward pass: the attention step then leaves them as they are.
  bool attention_kept = false;

  void attention(int layer, const void* qkv, void* att, float* lse) const {
    if (attention_kept) return;
    const int64_t K = qk_columns();
    attention_forward(plans_[layer], shape_, dtype(), qkv, element(qkv, K), element(qkv, 2 * K), att, lse, stream(),
                      workspace_, workspace_bytes_);
  }
  void attention_backward(int layer, const void* qkv, const void* att, const float* lse, const void* datt,
                          void* dqkv) const {
    const int64_t K = qk_columns();
    cuda::attention_backward(plans_[layer], shape_, dtype(), qkv, element(qkv, K), element(qkv, 2 * K), att, lse,
                             datt, dqkv, element(dqkv, K), element(dqkv, 2 * K), stream(), workspace_,
                             workspace_bytes_);
  }

 private:
  const std::vector<DeviceAttentionPlan>& plans_;  // (L)
  AttentionShape shape_;
  void* workspace_;
  size_t workspace_bytes_;
};

}  // namespace spt::cuda
