// Sparse causal attention over a pattern plan (one layer's per-head masks).
//
// Layout: q, k, v, out are (B, T, H, D) with a row stride per position, so the op can
// read straight out of a fused (B, T, 2*H*Dk + H*Dv) projection:
//   q(b, t, h, d) = q[(b * T + t) * q_stride + h * Dk + d]   (likewise k; v and out use Dv)
// Gradients dq, dk, dv use the strides of q, k, v; dout uses the stride of out.
// Scores are scaled by 1/sqrt(Dk). lse(b, h, t) is the log-sum-exp of the scaled
// scores of query t (natural log); a query with no allowed key gets out = 0 and
// lse = -inf, and contributes no gradient.
// Work and memory follow the attended pairs: no T x T buffer is ever built.
#pragma once

#include <cstdint>

#include "pattern/pattern.h"

namespace spt {

struct AttentionShape {
  int B = 1;
  int64_t T = 1;
  int H = 1;
  int Dk = 64;             // query/key head dim
  int Dv = 64;             // value/output head dim
  int64_t q_stride = 0;    // elements between positions; 0 means packed (H * Dk)
  int64_t k_stride = 0;    // 0 means H * Dk
  int64_t v_stride = 0;    // 0 means H * Dv
  int64_t out_stride = 0;  // 0 means H * Dv
  AttentionShape resolved() const;  // fills packed strides and validates
};

namespace cpu {

// out: (B, T, H, Dv) overwritten; lse: (B, H, T) overwritten.
void attention_forward(const AttentionPlan& plan, const AttentionShape& shape, const float* q, const float* k,
                       const float* v, float* out, float* lse);

// dq, dk, dv: overwritten (only their own columns of a fused buffer are touched).
// Deterministic: every gradient element is summed in a fixed order on one thread.
void attention_backward(const AttentionPlan& plan, const AttentionShape& shape, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const float* dout, float* dq, float* dk,
                        float* dv);

}  // namespace cpu

}  // namespace spt

