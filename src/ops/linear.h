// Fully connected layers in the PyTorch nn.Linear convention: weight is (out, in),
//   y = x @ weight^T + bias.
// Rows are positions: a (B, T, in) activation is one (N = B*T, in) matrix, so every
// product is one large sgemm.
#pragma once

#include "ops/dtype.h"

#include <cstdint>

namespace spt {

// Time and work of the matrix products, for benchmarks: how much of a step is sgemm.
struct MatmulStats {
  double seconds = 0.0;  // wall time inside sgemm calls
  double flops = 0.0;    // 2 * M * N * K summed over calls
  int64_t calls = 0;
};

namespace cpu {

// Counters of this thread's sgemm calls since the last reset (the model issues its
// products from the calling thread; sgemm threads internally).
MatmulStats& matmul_stats();
void reset_matmul_stats();

// y (N, out) = x (N, in) @ weight (out, in)^T + bias (out); bias may be null.
void linear_forward(const float* x, const float* weight, const float* bias, int64_t N, int in, int out, float* y);

// Given dy (N, out):
//   dx (N, in) = dy @ weight, overwritten, or added when accumulate_dx (dx may be null: skipped);
//   dweight (out, in) += dy^T @ x;
//   dbias (out) += sum over rows of dy (fp64 sums; dbias may be null).
void linear_backward(const float* x, const float* weight, const float* dy, int64_t N, int in, int out, float* dx,
                     bool accumulate_dx, float* dweight, float* dbias);

// dbias (out) += sum over the N rows of dy (N, out), summed in fp64 in a fixed order.
void add_column_sums(const float* dy, int64_t N, int out, float* dbias);

}  // namespace cpu
// CUDA backend: matrix products through cuBLASLt with fp32 accumulation (no TF32 in
// fp32 mode, so fp32 results track the CPU). x, weight, dy, dx have the activation type;
// bias, dweight, dbias are fp32; y has its own type (fp32 logits from bf16 inputs).
namespace cuda {
// A cuBLASLt handle and its workspace, one per stream.
class BlasContext {
 public:
  explicit BlasContext(CUstream_st* stream = nullptr);
  ~BlasContext();
  BlasContext(const BlasContext&) = delete;
  BlasContext& operator=(const BlasContext&) = delete;
  CUstream_st* stream() const { return stream_; }
  void* handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  // The algorithm chosen per problem and the scratch memory, private to the CUDA sources.
  struct State;
  State& state() { return *state_; }

 private:
  CUstream_st* stream_ = nullptr;
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  State* state_ = nullptr;
};
// y (N, out) = x (N, in) @ weight (out, in)^T + bias (out); bias may be null.
void linear_forward(BlasContext& blas, const void* x, const void* weight, const float* bias, int64_t N, int in, int out,
                    DType dtype, DType y_dtype, void* y);
// dx (N, in) = dy (N, out) @ weight, overwritten or added when accumulate_dx (dx may be null);
// dweight (out, in) += dy^T @ x in fp32; dbias (out) += column sums of dy (deterministic).
void linear_backward(BlasContext& blas, const void* x, const void* weight, const void* dy, int64_t N, int in, int out,
                     DType dtype, void* dx, bool accumulate_dx, float* dweight, float* dbias);
}  // namespace cuda

}  // namespace spt
