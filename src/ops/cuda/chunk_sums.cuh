// The deterministic finish of fp64 partial sums over row chunks (bias gradients, LayerNorm
// parameter gradients): out_k (C) += the chunk sums of partial (chunks, K, C), added in an
// order that depends only on chunks and C, so the bits do not depend on the device.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_check.h"

namespace spt::cuda::ops {

constexpr int kChunkSumColumns = 32;  // columns per block: a warp reads 32 adjacent values
constexpr int kChunkSumLanes = 16;    // chunk lanes per column: lane y adds chunks y, y + 16, ...

// Block (kChunkSumColumns, kChunkSumLanes) owns 32 columns; each lane adds its chunks in
// order, then the lane sums are added in lane order. out1 is used only with K 2.
template <int K>
__global__ void add_chunk_sums_kernel(const double* __restrict__ partial, int64_t chunks, int C,
                                      float* __restrict__ out0, float* __restrict__ out1) {
  static_assert(K == 1 || K == 2, "one or two sums per column");
  __shared__ double lane_sums[K][kChunkSumLanes][kChunkSumColumns];
  const int c = blockIdx.x * kChunkSumColumns + threadIdx.x;
  double sum[K] = {};
  if (c < C)
    for (int64_t chunk = threadIdx.y; chunk < chunks; chunk += kChunkSumLanes)
#pragma unroll
      for (int k = 0; k < K; ++k) sum[k] += partial[(chunk * K + k) * C + c];
#pragma unroll
  for (int k = 0; k < K; ++k) lane_sums[k][threadIdx.y][threadIdx.x] = sum[k];
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  float* const out[2] = {out0, out1};
#pragma unroll
  for (int k = 0; k < K; ++k) {
    double total = 0.0;
    for (int lane = 0; lane < kChunkSumLanes; ++lane) total += lane_sums[k][lane][threadIdx.x];
    out[k][c] = static_cast<float>(out[k][c] + total);
  }
}

// out0 (C) (and out1 with K 2) += the chunk sums of partial (chunks, K, C), on `stream`.
template <int K>
void add_chunk_sums(const double* partial, int64_t chunks, int C, float* out0, float* out1, cudaStream_t stream) {
  add_chunk_sums_kernel<K><<<static_cast<unsigned>((C + kChunkSumColumns - 1) / kChunkSumColumns),
                             dim3(kChunkSumColumns, kChunkSumLanes), 0, stream>>>(partial, chunks, C, out0, out1);
  SPT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace spt::cuda::ops
