// Sparse causal attention backward (SIMT, fp32 math; the fp32 path and the fallback of the
// tensor-core kernels in attention_tc_backward.cu), in three deterministic kernels:
//   delta  rowsum(dout * out) per (b, h, t), eight threads per row;
//   dK/dV  one thread block per (b, h, key tile) walks the query blocks that its key block
//          lists (transposed layout) and owns its dK, dV rows: no atomics;
//   dQ     one thread block per (b, h, query tile) walks the key blocks of its row list.
// Both gradient kernels recompute P = exp(scale * q.k - lse) tile by tile; nothing of
// size T x T is stored.
#include <cstdint>

#include "core/cuda_check.h"
#include "ops/cuda/attention_launch.h"
#include "ops/cuda/attention_simt_backward.cuh"
#include "ops/cuda/op_common.cuh"

namespace spt::cuda::detail {
namespace {

constexpr int kDeltaLanes = 8;   // threads per (b, t, h) row
constexpr int kDeltaRows = 32;   // rows of one head per block: consecutive t

// delta (B, H, T) = rowsum(dout * out) per (b, h, t). Block (kDeltaLanes, kDeltaRows) takes
// kDeltaRows positions of one (b, h) (blockIdx.y); each lane reads 16 bytes at a time when
// `vector` (row start and D aligned to them), the lanes' sums meet by shuffles in a fixed order.
template <typename Scalar>
__global__ void attention_delta_kernel(const Scalar* out, const Scalar* dout, int64_t out_stride, int T, int H, int D,
                                       bool vector, float* delta) {
  constexpr int kVector = ops::kVector<Scalar>;
  const int lane = threadIdx.x, bh = blockIdx.y;
  const int t = blockIdx.x * kDeltaRows + threadIdx.y;
  const int b = bh / H, h = bh % H;
  const int64_t at = (int64_t{b} * T + t) * out_stride + int64_t{h} * D;
  const Scalar* o = out + at;
  const Scalar* g = dout + at;
  const int columns = t < T ? D : 0;  // rows past the end add nothing but still shuffle
  float sum = 0.0f;
  if (vector) {
    for (int c = lane * kVector; c < columns; c += kDeltaLanes * kVector) {
      float ov[kVector], gv[kVector];
      ops::load_vector(o + c, ov);
      ops::load_vector(g + c, gv);
#pragma unroll
      for (int j = 0; j < kVector; ++j) sum = fmaf(ov[j], gv[j], sum);
    }
  } else {
    for (int c = lane; c < columns; c += kDeltaLanes) sum = fmaf(to_float(o[c]), to_float(g[c]), sum);
  }
#pragma unroll
  for (int offset = kDeltaLanes / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0 && t < T) delta[int64_t{bh} * T + t] = sum;
}

template <typename Scalar>
void launch_delta(const LaunchGeometry& g, const void* out, const void* dout, float* delta) {
  const AttentionShape& s = g.shape;
  SPT_CHECK(int64_t{s.B} * s.H <= 65535, "attention backward: B * H = ", int64_t{s.B} * s.H,
            " exceeds 65,535: split the batch");
  constexpr size_t kVectorBytes = 16;
  const bool vector = (s.Dv * sizeof(Scalar)) % kVectorBytes == 0 && (s.out_stride * sizeof(Scalar)) % kVectorBytes == 0 &&
                      reinterpret_cast<uintptr_t>(out) % kVectorBytes == 0 &&
                      reinterpret_cast<uintptr_t>(dout) % kVectorBytes == 0;
  const dim3 grid(static_cast<unsigned>((s.T + kDeltaRows - 1) / kDeltaRows), static_cast<unsigned>(s.B * s.H));
  attention_delta_kernel<Scalar><<<grid, dim3(kDeltaLanes, kDeltaRows), 0, g.stream>>>(
      static_cast<const Scalar*>(out), static_cast<const Scalar*>(dout), s.out_stride, static_cast<int>(s.T), s.H,
      s.Dv, vector, delta);
  SPT_CUDA_CHECK(cudaGetLastError());
}

template <typename Scalar>
void run(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
         const void* v, const void* out, const float* lse, const void* dout, float* delta, void* dq, void* dk,
         void* dv) {
  const AttentionShape& s = g.shape;
  launch_delta<Scalar>(g, out, dout, delta);
  if (g.tensor_cores) {
    backward_tc(g, layout, dtype, q, k, v, lse, dout, delta, dq, dk, dv);
    return;
  }
  const BackwardArgs<Scalar> args{static_cast<const Scalar*>(q), static_cast<const Scalar*>(k),
                                  static_cast<const Scalar*>(v), static_cast<const Scalar*>(dout),
                                  lse, delta, static_cast<Scalar*>(dq), static_cast<Scalar*>(dk),
                                  static_cast<Scalar*>(dv), s.q_stride, s.k_stride, s.v_stride, s.out_stride,
                                  g.scale};
  simt_gradients<Scalar>(g, layout, args);
}

}  // namespace

void attention_delta(const LaunchGeometry& g, DType dtype, const void* out, const void* dout, float* delta) {
  switch (dtype) {
    case DType::f32: return launch_delta<float>(g, out, dout, delta);
    case DType::bf16: return launch_delta<__nv_bfloat16>(g, out, dout, delta);
    case DType::f16: return launch_delta<__half>(g, out, dout, delta);
  }
}

void backward(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
              const void* v, const void* out, const float* lse, const void* dout, float* delta, void* dq, void* dk,
              void* dv) {
  switch (dtype) {
    case DType::f32: return run<float>(g, layout, dtype, q, k, v, out, lse, dout, delta, dq, dk, dv);
    case DType::bf16: return run<__nv_bfloat16>(g, layout, dtype, q, k, v, out, lse, dout, delta, dq, dk, dv);
    case DType::f16: return run<__half>(g, layout, dtype, q, k, v, out, lse, dout, delta, dq, dk, dv);
  }
}

}  // namespace spt::cuda::detail
