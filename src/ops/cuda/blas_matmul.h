// One cuBLASLt product, described in cuBLASLt's column-major terms. The linear layers
// (linear.cu) map their row-major matrices onto it: a row-major (r, c) matrix is the
// column-major (c, r) matrix with leading dimension c.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ops/linear.h"

namespace spt::cuda::detail {

// D (m, n) = op(A) (m, k) @ op(B) (k, n) + beta * D + bias (m, the same for every column).
// A is stored (k, m) when transpose_a, else (m, k); B is stored (n, k) when transpose_b,
// else (k, n); all column-major. A and B have ab_type; D has d_type (fp32, or ab_type).
// Accumulation and the epilogue are fp32 whatever the types.
struct MatmulProblem {
  int64_t m = 0, n = 0, k = 0;
  DType ab_type = DType::f32;
  const void* a = nullptr;
  int64_t lda = 0;
  bool transpose_a = false;
  const void* b = nullptr;
  int64_t ldb = 0;
  bool transpose_b = false;
  DType d_type = DType::f32;
  void* d = nullptr;
  int64_t ldd = 0;
  float beta = 0.0f;            // 0: D is not read
  const float* bias = nullptr;  // (m) fp32, or null
};

// Runs the product on blas.stream(). `what` names the calling operation and its shapes
// for error messages. The algorithm is chosen by cuBLASLt's heuristic once per problem
// (shape, types, pointer alignments) and reused, so repeated calls give identical bits.
void matmul(BlasContext& blas, const MatmulProblem& problem, const std::string& what);

// Device memory of at least `bytes`, 256-byte aligned, owned by the context. It may be
// reallocated by the next call (after the stream is synchronized), so it serves one
// operation at a time in stream order.
void* scratch(BlasContext& blas, size_t bytes);

}  // namespace spt::cuda::detail
