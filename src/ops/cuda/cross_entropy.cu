// Softmax cross-entropy on the device, one warp per row: the row maximum, the fp64 sum
// of exp(logit - max) (a fixed butterfly order), then the loss and the gradient, which
// recomputes each exponential rather than storing V values per row.
#include <cmath>

#include "ops/cross_entropy.h"
#include "ops/cuda/op_common.cuh"

namespace spt::cuda {
namespace {

constexpr int kRowsPerBlock = ops::kBlockThreads / ops::kWarpSize;

// logits: (N, V); targets, losses: (N); dlogits: (N, V) of T or null. dlogits may alias
// logits (T = float): in the last pass every lane reads and then writes only its own
// elements, and the warp has finished all other reads of the row before (__syncwarp).
template <typename T>
__global__ void cross_entropy_kernel(const float* logits, const uint8_t* __restrict__ targets, int64_t N, int V,
                                     float grad_scale, float* __restrict__ losses, T* dlogits) {
  const int lane = threadIdx.x % ops::kWarpSize;
  const int64_t row = int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / ops::kWarpSize;
  if (row >= N) return;
  const float* lr = logits + row * V;
  const int target = targets[row];
  const float target_logit = lr[target];
  float mx = -INFINITY;
  for (int v = lane; v < V; v += ops::kWarpSize) mx = fmaxf(mx, lr[v]);
  mx = ops::warp_max(mx);
  double sum = 0.0;
  for (int v = lane; v < V; v += ops::kWarpSize) sum += expf(lr[v] - mx);
  sum = ops::warp_sum(sum);
  if (lane == 0 && losses != nullptr)
    losses[row] = static_cast<float>((static_cast<double>(mx) - target_logit) + log(sum));
  if (dlogits == nullptr) return;
  const float scale = static_cast<float>(grad_scale / sum);
  __syncwarp();
  T* dr = dlogits + row * V;
  for (int v = lane; v < V; v += ops::kWarpSize) {
    float d = __fmul_rn(scale, expf(lr[v] - mx));
    if (v == target) d = __fsub_rn(d, grad_scale);
    ops::store_f32(dr + v, d);
  }
}

}  // namespace

void cross_entropy(const float* logits, const uint8_t* targets, int64_t N, int V, float grad_scale, float* losses,
                   DType dlogits_dtype, void* dlogits, CUstream_st* stream) {
  SPT_CHECK(N >= 1 && V >= 256, "cross_entropy: dims N=", N, " V=", V,
            " need N >= 1 and V >= 256 so that every uint8 target is a class");
  SPT_CHECK(logits != nullptr && targets != nullptr, "cross_entropy: null device pointer (logits or targets), N=", N);
  SPT_CHECK(losses != nullptr || dlogits != nullptr, "cross_entropy: losses and dlogits are both null: nothing to do");
  SPT_CHECK(N / kRowsPerBlock < (int64_t{1} << 31), "cross_entropy: N=", N, " rows exceed the grid limit");
  if (dlogits != nullptr && dlogits_dtype != DType::f32) {
    // A narrower dlogits sharing logits' memory would overwrite rows other warps still read.
    const auto* logit_bytes = reinterpret_cast<const unsigned char*>(logits);
    const auto* grad_bytes = static_cast<const unsigned char*>(dlogits);
    const size_t count = static_cast<size_t>(N) * V;
    const bool disjoint = grad_bytes + count * dtype_size(dlogits_dtype) <= logit_bytes ||
                          logit_bytes + count * sizeof(float) <= grad_bytes;
    SPT_CHECK(disjoint, "cross_entropy: ", dtype_name(dlogits_dtype),
              " dlogits overlaps the fp32 logits; only fp32 dlogits may alias logits: give it its own buffer");
  }
  const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  ops::dispatch_dtype(dlogits_dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_kernel<T><<<blocks, ops::kBlockThreads, 0, stream>>>(logits, targets, N, V, grad_scale, losses,
                                                                       static_cast<T*>(dlogits));
    SPT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace spt::cuda
