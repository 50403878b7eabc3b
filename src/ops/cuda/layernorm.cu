// LayerNorm on the device. Forward and the dx part of the backward give one warp to a
// row; the row statistics and the row sums of the backward are fp64, as on the CPU, so
// mean and rstd agree with the CPU's to the last fp32 bit in all but rare ties.
// dweight and dbias are reduced without atomics: every block sums a fixed chunk of rows
// for 256 columns in fp64 into a scratch buffer, and ops::add_chunk_sums adds the chunks in a
// fixed order. The chunk size depends on N only, so the bits do not depend on the device.
#include "ops/cuda/chunk_sums.cuh"
#include "ops/cuda/op_common.cuh"
#include "ops/layernorm.h"

namespace spt::cuda {
namespace {

constexpr int kRowsPerBlock = ops::kBlockThreads / ops::kWarpSize;  // one warp per row
constexpr int64_t kMaxChunks = 1024;                                  // bounds the scratch to (1024, 2, C) fp64

// x: (N, C); weight, bias: (C); y: (N, C) of T; mean, rstd: (N).
template <typename T>
__global__ void layernorm_forward_kernel(const float* __restrict__ x, const float* __restrict__ weight,
                                         const float* __restrict__ bias, int64_t N, int C, T* __restrict__ y,
                                         float* __restrict__ mean, float* __restrict__ rstd) {
  const int lane = threadIdx.x % ops::kWarpSize;
  const int64_t row = int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / ops::kWarpSize;
  if (row >= N) return;
  const float* xr = x + row * C;
  double sum = 0.0;
  for (int c = lane; c < C; c += ops::kWarpSize) sum += xr[c];
  const double mu = ops::warp_sum(sum) / C;
  double sq = 0.0;
  for (int c = lane; c < C; c += ops::kWarpSize) {
    const double d = xr[c] - mu;
    sq += d * d;
  }
  const double r = 1.0 / sqrt(ops::warp_sum(sq) / C + kLayerNormEps);
  const float mu_f = static_cast<float>(mu), r_f = static_cast<float>(r);
  if (lane == 0) {
    mean[row] = mu_f;
    rstd[row] = r_f;
  }
  T* yr = y + row * C;
  for (int c = lane; c < C; c += ops::kWarpSize) ops::store_f32(yr + c, (xr[c] - mu_f) * r_f * weight[c] + bias[c]);
}

// dx = r * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight, one warp per row.
// x, dx: (N, C) fp32; dy: (N, C) of T; weight: (C); mean, rstd: (N).
template <typename T>
__global__ void layernorm_dx_kernel(const float* __restrict__ x, const float* __restrict__ weight,
                                    const float* __restrict__ mean, const float* __restrict__ rstd,
                                    const T* __restrict__ dy, int64_t N, int C, bool accumulate_dx,
                                    float* __restrict__ dx) {
  const int lane = threadIdx.x % ops::kWarpSize;
  const int64_t row = int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / ops::kWarpSize;
  if (row >= N) return;
  const float* xr = x + row * C;
  const T* dyr = dy + row * C;
  const float mu = mean[row], r = rstd[row];
  double sum_g = 0.0, sum_gx = 0.0;
  for (int c = lane; c < C; c += ops::kWarpSize) {
    const float xhat = (xr[c] - mu) * r;
    const float g = ops::load_f32(dyr + c) * weight[c];
    sum_g += g;
    sum_gx += static_cast<double>(g) * xhat;
  }
  const float mean_g = static_cast<float>(ops::warp_sum(sum_g) / C);
  const float mean_gx = static_cast<float>(ops::warp_sum(sum_gx) / C);
  float* dxr = dx + row * C;
  for (int c = lane; c < C; c += ops::kWarpSize) {
    const float xhat = (xr[c] - mu) * r;
    const float value = r * (ops::load_f32(dyr + c) * weight[c] - mean_g - xhat * mean_gx);
    dxr[c] = accumulate_dx ? dxr[c] + value : value;
  }
}

// partial: (chunks, 2, C): row chunk blockIdx.y's sums of dy * xhat and of dy for the
// column of each thread, rows in increasing order.
template <typename T>
__global__ void layernorm_param_partial_kernel(const float* __restrict__ x, const float* __restrict__ mean,
                                               const float* __restrict__ rstd, const T* __restrict__ dy, int64_t N,
                                               int C, int64_t rows_per_chunk, double* __restrict__ partial) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t chunk = blockIdx.y;
  const int64_t row_begin = chunk * rows_per_chunk;
  const int64_t row_end = row_begin + rows_per_chunk < N ? row_begin + rows_per_chunk : N;
  double dw = 0.0, db = 0.0;
#pragma unroll 8
  for (int64_t row = row_begin; row < row_end; ++row) {
    const float xhat = (x[row * C + c] - mean[row]) * rstd[row];
    const float g = ops::load_f32(dy + row * C + c);
    dw += static_cast<double>(g) * xhat;
    db += g;
  }
  partial[(chunk * 2) * C + c] = dw;
  partial[(chunk * 2 + 1) * C + c] = db;
}

void check_dims(const char* op, int64_t N, int C) {
  SPT_CHECK(N >= 1 && C >= 1, op, ": dims N=", N, " C=", C, " must be positive");
}

unsigned row_blocks(int64_t N) { return static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void layernorm_forward(const float* x, const float* weight, const float* bias, int64_t N, int C, DType dtype, void* y,
                       float* mean, float* rstd, CUstream_st* stream) {
  check_dims("layernorm_forward", N, C);
  SPT_CHECK(x != nullptr && weight != nullptr && bias != nullptr && y != nullptr && mean != nullptr &&
                rstd != nullptr,
            "layernorm_forward: null device pointer among x, weight, bias, y, mean, rstd (N=", N, ", C=", C, ")");
  SPT_CHECK(N / kRowsPerBlock < (int64_t{1} << 31), "layernorm_forward: N=", N, " rows exceed the grid limit");
  ops::dispatch_dtype(dtype, "layernorm_forward", [&](auto tag) {
    using T = decltype(tag);
    layernorm_forward_kernel<T><<<row_blocks(N), ops::kBlockThreads, 0, stream>>>(x, weight, bias, N, C,
                                                                                   static_cast<T*>(y), mean, rstd);
    SPT_CUDA_CHECK_LAUNCH();
  });
}

void layernorm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const void* dy,
                        int64_t N, int C, DType dtype, float* dx, bool accumulate_dx, float* dweight, float* dbias,
                        CUstream_st* stream) {
  check_dims("layernorm_backward", N, C);
  SPT_CHECK(x != nullptr && weight != nullptr && mean != nullptr && rstd != nullptr && dy != nullptr &&
                dx != nullptr && dweight != nullptr && dbias != nullptr,
            "layernorm_backward: null device pointer among x, weight, mean, rstd, dy, dx, dweight, dbias (N=", N,
            ", C=", C, ")");
  SPT_CHECK(N / kRowsPerBlock < (int64_t{1} << 31), "layernorm_backward: N=", N, " rows exceed the grid limit");
  // At least 64 rows per chunk (enough work per thread), at most kMaxChunks chunks.
  int64_t rows_per_chunk = (N + kMaxChunks - 1) / kMaxChunks;
  if (rows_per_chunk < 64) rows_per_chunk = 64;
  const int64_t chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  const unsigned column_blocks = static_cast<unsigned>((C + ops::kBlockThreads - 1) / ops::kBlockThreads);
  ops::dispatch_dtype(dtype, "layernorm_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* dy_typed = static_cast<const T*>(dy);
    layernorm_dx_kernel<T><<<row_blocks(N), ops::kBlockThreads, 0, stream>>>(x, weight, mean, rstd, dy_typed, N, C,
                                                                             accumulate_dx, dx);
    SPT_CUDA_CHECK_LAUNCH();
    double* partial = nullptr;  // (chunks, 2, C)
    SPT_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partial), static_cast<size_t>(chunks) * 2 * C *
                                                                           sizeof(double), stream));
    layernorm_param_partial_kernel<T><<<dim3(column_blocks, static_cast<unsigned>(chunks)), ops::kBlockThreads, 0,
                                        stream>>>(x, mean, rstd, dy_typed, N, C, rows_per_chunk, partial);
    SPT_CUDA_CHECK_LAUNCH();
    ops::add_chunk_sums<2>(partial, chunks, C, dweight, dbias, stream);
    SPT_CUDA_CHECK(cudaFreeAsync(partial, stream));
  });
}

}  // namespace spt::cuda
