// Softmax cross-entropy over the V logits of every position, in nats:
//   loss[n] = logsumexp(logits[n, :]) - logits[n, target[n]].
#pragma once

#include "ops/dtype.h"

#include <cstdint>

namespace spt {
namespace cpu {

// logits: (N, V); targets: (N); losses: (N) written. Returns the sum of the losses (fp64).
double cross_entropy_forward(const float* logits, const uint8_t* targets, int64_t N, int V, float* losses);

// Forward and backward in one pass: losses (N) written (may be null) and
//   dlogits (N, V) = grad_scale * (softmax(logits) - onehot(target)),
// where grad_scale is d(objective)/d(loss[n]) (e.g. loss_scale / N for a mean).
// dlogits may alias logits. Returns the sum of the losses (fp64).
double cross_entropy_forward_backward(const float* logits, const uint8_t* targets, int64_t N, int V, float grad_scale,
                                      float* losses, float* dlogits);

}  // namespace cpu
// CUDA backend: device pointers, asynchronous on `stream`.
namespace cuda {
// logits: (N, V) fp32; targets: (N) uint8; losses: (N) fp32 written. When dlogits is not
// null it receives grad_scale * (softmax(logits) - onehot(target)) as (N, V) of
// dlogits_dtype (it may alias logits when that is fp32).
void cross_entropy(const float* logits, const uint8_t* targets, int64_t N, int V, float grad_scale, float* losses,
                   DType dlogits_dtype, void* dlogits, CUstream_st* stream = nullptr);
}  // namespace cuda

}  // namespace spt
