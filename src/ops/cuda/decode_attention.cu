// Decode attention: one thread block per (head, sequence) for the single query row at
// position t. The block's warps share out the key blocks that the plan lists for t's query
// block; a warp tests 32 keys of a block against the head's mask at once (ballot) and
// scores the allowed ones one by one, the lanes splitting the head dims, with an online
// softmax per warp. The warps' partial results are merged at the end. All math is fp32.
#include <cmath>

#include "core/cuda_check.h"
#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/decode_attention.h"

namespace spt::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kLanes = 32;
constexpr int kMaxDim = 128;
constexpr int kColumnsPerLane = kMaxDim / kLanes;  // head dims d = lane + 32 * c

struct DecodeArgs {
  const float* q;       // (S, q_stride)
  const float* keys;    // (S, T, H * Dk)
  const float* values;  // (S, T, H * Dv)
  float* out;           // (S, H * Dv)
  int64_t q_stride;
  int t;
  int Dk, Dv;
  float scale;          // 1 / sqrt(Dk)
};

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__global__ void __launch_bounds__(kWarps * kLanes) decode_attention_kernel(detail::LayoutView layout, DecodeArgs args) {
  __shared__ float warp_max[kWarps];
  __shared__ float warp_total[kWarps];
  __shared__ float warp_out[kWarps][kMaxDim];

  const int h = blockIdx.x, s = blockIdx.y, H = gridDim.x;
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int t = args.t;
  const int64_t T = layout.T;
  const detail::DeviceHeadMask mask = layout.masks[h];
  const float* q = args.q + int64_t{s} * args.q_stride + int64_t{h} * args.Dk;
  const float* keys = args.keys + int64_t{s} * T * H * args.Dk + int64_t{h} * args.Dk;      // row j at j * H * Dk
  const float* values = args.values + int64_t{s} * T * H * args.Dv + int64_t{h} * args.Dv;  // row j at j * H * Dv

  float q_part[kColumnsPerLane];
#pragma unroll
  for (int c = 0; c < kColumnsPerLane; ++c) {
    const int d = lane + kLanes * c;
    q_part[c] = d < args.Dk ? q[d] : 0.0f;
  }
  float row_max = -INFINITY, total = 0.0f, acc[kColumnsPerLane];
#pragma unroll
  for (int c = 0; c < kColumnsPerLane; ++c) acc[c] = 0.0f;

  const int64_t list = int64_t{h} * layout.blocks + t / layout.block;
  const int64_t list_end = layout.row_begin[list + 1];
  for (int64_t e = layout.row_begin[list] + warp; e < list_end; e += kWarps) {
    const int key_block = layout.key_block[e];
    const bool full = layout.key_full[e] != 0;
    const int last_key = min(t, (key_block + 1) * layout.block - 1);
    for (int base = key_block * layout.block; base <= last_key; base += kLanes) {
      const int j = base + lane;
      const bool allowed = j <= last_key && (full || detail::head_allows(mask, t, j));
      unsigned pending = __ballot_sync(0xffffffffu, allowed);
      while (pending != 0) {  // the same keys on every lane of the warp
        const int key = base + __ffs(pending) - 1;
        pending &= pending - 1;
        const float* k_row = keys + int64_t{key} * H * args.Dk;
        float dot = 0.0f;
#pragma unroll
        for (int c = 0; c < kColumnsPerLane; ++c) {
          const int d = lane + kLanes * c;
          if (d < args.Dk) dot = fmaf(q_part[c], k_row[d], dot);
        }
        const float score = warp_sum(dot) * args.scale;
        // Scores are finite, so new_max is too and exp(-inf - new_max) = 0 on the first key.
        const float new_max = fmaxf(row_max, score);
        const float rescale = expf(row_max - new_max);
        const float p = expf(score - new_max);
        total = total * rescale + p;
        const float* v_row = values + int64_t{key} * H * args.Dv;
#pragma unroll
        for (int c = 0; c < kColumnsPerLane; ++c) {
          const int d = lane + kLanes * c;
          acc[c] = acc[c] * rescale + (d < args.Dv ? p * v_row[d] : 0.0f);
        }
        row_max = new_max;
      }
    }
  }

  if (lane == 0) {
    warp_max[warp] = row_max;
    warp_total[warp] = total;
  }
#pragma unroll
  for (int c = 0; c < kColumnsPerLane; ++c) warp_out[warp][lane + kLanes * c] = acc[c];
  __syncthreads();

  // Merge the warps: a warp that saw no key has max -inf and weight exp(-inf) = 0.
  float block_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, warp_max[w]);
  float* out = args.out + int64_t{s} * H * args.Dv + int64_t{h} * args.Dv;
  for (int d = threadIdx.x; d < args.Dv; d += blockDim.x) {
    if (block_max == -INFINITY) {
      out[d] = 0.0f;
      continue;
    }
    float sum = 0.0f, value = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float weight = expf(warp_max[w] - block_max);
      sum += warp_total[w] * weight;
      value += warp_out[w][d] * weight;
    }
    out[d] = value / sum;
  }
}

}  // namespace

void decode_attention(const DeviceAttentionPlan& plan, const DecodeShape& shape, const float* q, const float* keys,
                      const float* values, float* out, CUstream_st* stream) {
  SPT_CHECK(plan.row_begin != nullptr, "decode attention: the device plan is empty; build it with make_device_plan");
  SPT_CHECK(shape.H == plan.heads, "decode attention: H = ", shape.H, " but the device plan has ", plan.heads,
            " heads");
  SPT_CHECK(shape.t >= 0 && shape.t < plan.T, "decode attention: position ", shape.t,
            " is outside the cache of ", plan.T, " positions");
  SPT_CHECK(shape.Dk >= 1 && shape.Dk <= kMaxDim && shape.Dv >= 1 && shape.Dv <= kMaxDim,
            "decode attention: head dims Dk = ", shape.Dk, ", Dv = ", shape.Dv, " must be between 1 and ", kMaxDim);
  SPT_CHECK(shape.S >= 1 && shape.S <= 65535 && shape.H <= 65535, "decode attention: S = ", shape.S, " and H = ",
            shape.H, " must each be between 1 and 65535 (CUDA grid limit)");
  SPT_CHECK(shape.q_stride >= int64_t{shape.H} * shape.Dk, "decode attention: q_stride ", shape.q_stride,
            " is below H * Dk = ", int64_t{shape.H} * shape.Dk);
  SPT_CHECK(q != nullptr && keys != nullptr && values != nullptr && out != nullptr,
            "decode attention: null device pointer among q, keys, values and out");
  const detail::LayoutView layout{plan.row_begin,   plan.key_block,  plan.key_full,
                                  plan.col_begin,   plan.query_block, plan.query_full,
                                  static_cast<const detail::DeviceHeadMask*>(plan.head_masks),
                                  static_cast<int>(plan.T), plan.block, static_cast<int>(plan.blocks)};
  const DecodeArgs args{q, keys, values, out, shape.q_stride, static_cast<int>(shape.t), shape.Dk, shape.Dv,
                        static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.Dk)))};
  decode_attention_kernel<<<dim3(static_cast<unsigned>(shape.H), static_cast<unsigned>(shape.S)), kWarps * kLanes, 0,
                            stream>>>(layout, args);
  SPT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace spt::cuda
