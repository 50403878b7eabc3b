// Linear layers on OpenBLAS sgemm. Row-major throughout: x (N, in), weight (out, in).
#include "ops/linear.h"

#include <cblas.h>

#include <chrono>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace spt::cpu {
namespace {

// C (M, N) = op(A) @ op(B) + beta * C, row-major, timed into matmul_stats().
void timed_sgemm(CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int64_t M, int64_t N, int64_t K, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const auto start = std::chrono::steady_clock::now();
  cblas_sgemm(CblasRowMajor, trans_a, trans_b, static_cast<blasint>(M), static_cast<blasint>(N),
              static_cast<blasint>(K), 1.0f, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
  MatmulStats& stats = matmul_stats();
  stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats.flops += 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  ++stats.calls;
}

void check_dims(int64_t N, int in, int out) {
  SPT_CHECK(N >= 1 && in >= 1 && out >= 1, "linear layer dims N=", N, " in=", in, " out=", out, " must be positive");
  SPT_CHECK(N <= (int64_t{1} << 31) - 1, "linear layer with N = ", N, " rows exceeds the BLAS index range");
}

}  // namespace

MatmulStats& matmul_stats() {
  thread_local MatmulStats stats;
  return stats;
}

void reset_matmul_stats() { matmul_stats() = MatmulStats{}; }

void linear_forward(const float* x, const float* weight, const float* bias, int64_t N, int in, int out, float* y) {
  check_dims(N, in, out);
  float beta = 0.0f;
  if (bias != nullptr) {
    parallel_for(N, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) std::copy(bias, bias + out, y + n * out);
    }, 256);
    beta = 1.0f;
  }
  timed_sgemm(CblasNoTrans, CblasTrans, N, out, in, x, in, weight, in, beta, y, out);
}

void add_column_sums(const float* dy, int64_t N, int out, float* dbias) {
  // Each thread owns a range of columns and walks every row in order, so the sums do
  // not depend on the thread count.
  parallel_for(out, [&](int64_t begin, int64_t end) {
    std::vector<double> sums(static_cast<size_t>(end - begin), 0.0);
    for (int64_t n = 0; n < N; ++n) {
      const float* row = dy + n * out + begin;
#pragma omp simd
      for (int64_t c = 0; c < end - begin; ++c) sums[c] += row[c];
    }
    for (int64_t c = begin; c < end; ++c) dbias[c] = static_cast<float>(dbias[c] + sums[c - begin]);
  }, 64);
}

void linear_backward(const float* x, const float* weight, const float* dy, int64_t N, int in, int out, float* dx,
                     bool accumulate_dx, float* dweight, float* dbias) {
  check_dims(N, in, out);
  if (dx != nullptr)
    timed_sgemm(CblasNoTrans, CblasNoTrans, N, in, out, dy, out, weight, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
  timed_sgemm(CblasTrans, CblasNoTrans, out, in, N, dy, out, x, in, 1.0f, dweight, in);
  if (dbias != nullptr) add_column_sums(dy, N, out, dbias);
}

}  // namespace spt::cpu
