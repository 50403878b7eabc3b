// Linear layers on the GPU: every product is one cuBLASLt call (blas_context.cu); the
// bias gradient is a deterministic column-sum kernel.
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
#include "ops/linear.h"

namespace spt::cuda {
namespace {

constexpr int kSumColumns = 32;      // columns per block: one warp reads 32 adjacent elements of a row
constexpr int kSumRowLanes = 8;      // rows a block reads at once
constexpr int kMaxRowChunks = 64;    // row ranges summed in parallel, bounding the partials to 64 x out
constexpr int64_t kMinChunkRows = 256;

__device__ __forceinline__ double to_double(float x) { return x; }
__device__ __forceinline__ double to_double(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ double to_double(__half x) { return __half2float(x); }

// partials (chunks, out): partials[c][j] = sum of dy[n][j] over the rows n of chunk c.
// Block (kSumColumns, kSumRowLanes) owns kSumColumns columns of one chunk; lane r sums
// rows r, r + kSumRowLanes, ... in order, and lane sums are added in lane order, so the
// result depends only on N and out.
template <typename T>
__global__ void column_partial_sums_kernel(const T* dy, int64_t N, int out, int64_t chunk_rows, double* partials) {
  __shared__ double lane_sums[kSumRowLanes][kSumColumns];
  const int column = blockIdx.x * kSumColumns + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t end = begin + chunk_rows < N ? begin + chunk_rows : N;
  double sum = 0.0;
  if (column < out) {
    // Unrolled so that several loads are in flight; the additions keep their order.
#pragma unroll 8
    for (int64_t row = begin + threadIdx.y; row < end; row += kSumRowLanes) sum += to_double(dy[row * out + column]);
  }
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || column >= out) return;
  double total = 0.0;
  for (int lane = 0; lane < kSumRowLanes; ++lane) total += lane_sums[lane][threadIdx.x];
  partials[static_cast<int64_t>(blockIdx.y) * out + column] = total;
}

// dbias (out) += sum over chunks of partials (chunks, out), in chunk order.
__global__ void add_partial_sums_kernel(const double* partials, int chunks, int out, float* dbias) {
  const int column = blockIdx.x * blockDim.x + threadIdx.x;
  if (column >= out) return;
  double total = 0.0;
#pragma unroll 8
  for (int c = 0; c < chunks; ++c) total += partials[static_cast<int64_t>(c) * out + column];
  dbias[column] = static_cast<float>(static_cast<double>(dbias[column]) + total);
}

// dbias (out) += column sums of dy (N, out), summed in fp64 in a fixed order.
void add_column_sums(BlasContext& blas, const void* dy, int64_t N, int out, DType dtype, float* dbias) {
  const int64_t wanted_chunks = std::min<int64_t>(kMaxRowChunks, (N + kMinChunkRows - 1) / kMinChunkRows);
  const int64_t chunk_rows = (N + wanted_chunks - 1) / wanted_chunks;
  const int chunks = static_cast<int>((N + chunk_rows - 1) / chunk_rows);
  auto* partials = static_cast<double*>(
      detail::scratch(blas, static_cast<size_t>(chunks) * static_cast<size_t>(out) * sizeof(double)));
  const dim3 grid(static_cast<unsigned>((out + kSumColumns - 1) / kSumColumns), static_cast<unsigned>(chunks));
  const dim3 block(kSumColumns, kSumRowLanes);
  cudaStream_t stream = blas.stream();
  switch (dtype) {
    case DType::f32:
      column_partial_sums_kernel<<<grid, block, 0, stream>>>(static_cast<const float*>(dy), N, out, chunk_rows,
                                                              partials);
      break;
    case DType::bf16:
      column_partial_sums_kernel<<<grid, block, 0, stream>>>(static_cast<const __nv_bfloat16*>(dy), N, out,
                                                              chunk_rows, partials);
      break;
    case DType::f16:
      column_partial_sums_kernel<<<grid, block, 0, stream>>>(static_cast<const __half*>(dy), N, out, chunk_rows,
                                                              partials);
      break;
  }
  SPT_CUDA_CHECK(cudaGetLastError());
  constexpr int kThreads = 256;
  add_partial_sums_kernel<<<(out + kThreads - 1) / kThreads, kThreads, 0, stream>>>(partials, chunks, out, dbias);
  SPT_CUDA_CHECK(cudaGetLastError());
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
