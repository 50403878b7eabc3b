// Linear layers on the GPU: every product is one cuBLASLt call (blas_context.cu); the
// bias gradient is a deterministic column-sum kernel pair.
//
// A packed row-major (r, c) matrix M is, read column-major, M^T: (c, r) with leading
// dimension c. So each product is one column-major cuBLASLt product:
//   forward  y^T (out, N)   = (W^T)^T @ x^T      W^T is (in, out): A transposed
//   dx       dx^T (in, N)   = W^T @ dy^T
//   dweight  dW^T (in, out) += x^T @ (dy^T)^T    dy^T is (out, N): B transposed
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/blas_matmul.h"
#include "ops/cuda/chunk_sums.cuh"
#include "ops/cuda/op_common.cuh"
#include "ops/linear.h"

namespace spt::cuda {
namespace {

constexpr int kSumLanes = 32;      // column groups per block: a warp reads one row's 32 adjacent groups
constexpr int kSumRowLanes = 8;    // rows a block reads at once
constexpr int kTargetBlocks = 512;  // partial-sum blocks to aim for (a function of N and out only)
constexpr int64_t kMinChunkRows = 64;

__device__ __forceinline__ double to_double(float x) { return x; }
__device__ __forceinline__ double to_double(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ double to_double(__half x) { return __half2float(x); }

// partials (chunks, out): partials[c][j] = sum of dy[n][j] over the rows n of chunk c.
// Block (kSumLanes, kSumRowLanes) owns kSumLanes groups of V adjacent columns of one chunk
// (V = kVector<T> when rows are 16-byte aligned, one 16-byte load per group, else 1); row
// lane r sums rows r, r + kSumRowLanes, ... in order, and the lane sums are added in lane
// order, so the result depends only on N and out.
template <typename T, int V>
__global__ void column_partial_sums_kernel(const T* dy, int64_t N, int out, int64_t chunk_rows, double* partials) {
  __shared__ double lane_sums[kSumRowLanes][kSumLanes * V];
  const int column = (blockIdx.x * kSumLanes + threadIdx.x) * V;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t end = begin + chunk_rows < N ? begin + chunk_rows : N;
  double sum[V] = {};
  if (column < out) {
    // Unrolled so that several loads are in flight; the additions keep their order.
#pragma unroll 4
    for (int64_t row = begin + threadIdx.y; row < end; row += kSumRowLanes) {
      if constexpr (V == 1) {
        sum[0] += to_double(dy[row * out + column]);
      } else {
        float v[V];
        ops::load_vector(dy + row * out + column, v);
#pragma unroll
        for (int i = 0; i < V; ++i) sum[i] += v[i];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < V; ++i) lane_sums[threadIdx.y][threadIdx.x * V + i] = sum[i];
  __syncthreads();
  // Thread (x, y) finishes columns x + kSumLanes k of the block's kSumLanes * V.
  for (int k = threadIdx.y; k < V; k += kSumRowLanes) {
    const int local = threadIdx.x + kSumLanes * k;
    const int c = blockIdx.x * kSumLanes * V + local;
    if (c >= out) continue;
    double total = 0.0;
    for (int lane = 0; lane < kSumRowLanes; ++lane) total += lane_sums[lane][local];
    partials[static_cast<int64_t>(blockIdx.y) * out + c] = total;
  }
}

template <typename T>
void launch_column_sums(const T* dy, int64_t N, int out, int64_t chunk_rows, int chunks, double* partials,
                        cudaStream_t stream) {
  constexpr int V = ops::kVector<T>;
  const dim3 block(kSumLanes, kSumRowLanes);
  if (out % V == 0 && ops::aligned_to(dy, 16)) {
    const dim3 grid(static_cast<unsigned>((out / V + kSumLanes - 1) / kSumLanes), static_cast<unsigned>(chunks));
    column_partial_sums_kernel<T, V><<<grid, block, 0, stream>>>(dy, N, out, chunk_rows, partials);
  } else {
    const dim3 grid(static_cast<unsigned>((out + kSumLanes - 1) / kSumLanes), static_cast<unsigned>(chunks));
    column_partial_sums_kernel<T, 1><<<grid, block, 0, stream>>>(dy, N, out, chunk_rows, partials);
  }
  SPT_CUDA_CHECK(cudaGetLastError());
}

// dbias (out) += column sums of dy (N, out), summed in fp64 in a fixed order. The row chunks
// give about kTargetBlocks partial-sum blocks of 256-column groups (fewer for short N).
void add_column_sums(BlasContext& blas, const void* dy, int64_t N, int out, DType dtype, float* dbias) {
  const int64_t column_blocks = (out + 255) / 256;
  const int64_t wanted_chunks =
      std::max<int64_t>(1, std::min<int64_t>((kTargetBlocks + column_blocks - 1) / column_blocks,
                                             (N + kMinChunkRows - 1) / kMinChunkRows));
  const int64_t chunk_rows = (N + wanted_chunks - 1) / wanted_chunks;
  const int chunks = static_cast<int>((N + chunk_rows - 1) / chunk_rows);
  auto* partials = static_cast<double*>(
      detail::scratch(blas, static_cast<size_t>(chunks) * static_cast<size_t>(out) * sizeof(double)));
  cudaStream_t stream = blas.stream();
  switch (dtype) {
    case DType::f32:
      launch_column_sums(static_cast<const float*>(dy), N, out, chunk_rows, chunks, partials, stream);
      break;
    case DType::bf16:
      launch_column_sums(static_cast<const __nv_bfloat16*>(dy), N, out, chunk_rows, chunks, partials, stream);
      break;
    case DType::f16:
      launch_column_sums(static_cast<const __half*>(dy), N, out, chunk_rows, chunks, partials, stream);
      break;
  }
  ops::add_chunk_sums<1>(partials, chunks, out, dbias, nullptr, stream);
}

void check_dims(const std::string& what, int64_t N, int in, int out) {
  SPT_CHECK(N >= 1 && in >= 1 && out >= 1, what, ": dims N=", N, " in=", in, " out=", out, " must be positive");
  SPT_CHECK(N <= (int64_t{1} << 31) - 1, what, ": N = ", N, " rows exceeds 2^31 - 1; split the batch");
}

// A pointer the caller must give, aligned to its element size (cuBLASLt and the kernels
// read whole elements; the heuristic is told each pointer's actual alignment beyond that).
void check_pointer(const std::string& what, const char* name, const void* pointer, size_t element_bytes) {
  SPT_CHECK(pointer != nullptr, what, ": ", name, " is null");
  SPT_CHECK(reinterpret_cast<uintptr_t>(pointer) % element_bytes == 0, what, ": ", name, " at ", pointer,
            " is not aligned to its ", element_bytes, "-byte elements");
}

}  // namespace

void linear_forward(BlasContext& blas, const void* x, const void* weight, const float* bias, int64_t N, int in, int out,
                    DType dtype, DType y_dtype, void* y) {
  const std::string what = message("linear_forward (N=", N, ", in=", in, ", out=", out, ", ", dtype_name(dtype),
                                    " -> ", dtype_name(y_dtype), ")");
  check_dims(what, N, in, out);
  SPT_CHECK(y_dtype == DType::f32 || y_dtype == dtype, what, ": y must be fp32 or ", dtype_name(dtype));
  check_pointer(what, "x", x, dtype_size(dtype));
  check_pointer(what, "weight", weight, dtype_size(dtype));
  check_pointer(what, "y", y, dtype_size(y_dtype));
  if (bias != nullptr) check_pointer(what, "bias", bias, sizeof(float));

  detail::MatmulProblem p;
  p.m = out;
  p.n = N;
  p.k = in;
  p.ab_type = dtype;
  p.a = weight;  // stored (in, out) column-major, used transposed
  p.lda = in;
  p.transpose_a = true;
  p.b = x;  // (in, N) column-major
  p.ldb = in;
  p.d_type = y_dtype;
  p.d = y;  // (out, N) column-major
  p.ldd = out;
  p.bias = bias;
  detail::matmul(blas, p, what);
}

void linear_backward(BlasContext& blas, const void* x, const void* weight, const void* dy, int64_t N, int in, int out,
                     DType dtype, void* dx, bool accumulate_dx, float* dweight, float* dbias) {
  const std::string what =
      message("linear_backward (N=", N, ", in=", in, ", out=", out, ", ", dtype_name(dtype), ")");
  check_dims(what, N, in, out);
  check_pointer(what, "x", x, dtype_size(dtype));
  check_pointer(what, "dy", dy, dtype_size(dtype));
  check_pointer(what, "dweight", dweight, sizeof(float));
  if (dx != nullptr) {
    check_pointer(what, "weight", weight, dtype_size(dtype));
    check_pointer(what, "dx", dx, dtype_size(dtype));
  }
  if (dbias != nullptr) check_pointer(what, "dbias", dbias, sizeof(float));

  if (dx != nullptr) {
    detail::MatmulProblem p;
    p.m = in;
    p.n = N;
    p.k = out;
    p.ab_type = dtype;
    p.a = weight;  // (in, out) column-major
    p.lda = in;
    p.b = dy;  // (out, N) column-major
    p.ldb = out;
    p.d_type = dtype;
    p.d = dx;  // (in, N) column-major
    p.ldd = in;
    p.beta = accumulate_dx ? 1.0f : 0.0f;
    detail::matmul(blas, p, what);
  }
  {
    detail::MatmulProblem p;
    p.m = in;
    p.n = out;
    p.k = N;
    p.ab_type = dtype;
    p.a = x;  // (in, N) column-major
    p.lda = in;
    p.b = dy;  // stored (out, N) column-major, used transposed
    p.ldb = out;
    p.transpose_b = true;
    p.d_type = DType::f32;
    p.d = dweight;  // (in, out) column-major
    p.ldd = in;
    p.beta = 1.0f;
    detail::matmul(blas, p, what);
  }
  if (dbias != nullptr) add_column_sums(blas, dy, N, out, dtype, dbias);
}

}  // namespace spt::cuda
