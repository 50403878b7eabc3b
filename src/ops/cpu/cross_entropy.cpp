// Row-wise softmax cross-entropy with the max subtracted before exponentiation and
// the normalizer summed in fp64.
#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "ops/cpu/vector_math.h"

namespace spt::cpu {
namespace {

struct RowSoftmax {
  float max;
  double sum;  // sum of `shifted`
  // -log softmax at `target`, in fp64 so that a near-zero loss keeps its digits.
  double loss(const float* row, int target) const {
    return (static_cast<double>(max) - row[target]) + std::log(sum);
  }
};

// Softmax statistics of one row; `shifted` (V) receives exp(logit - max).
RowSoftmax row_softmax(const float* row, int V, float* shifted) {
  float mx = row[0];
  for (int v = 1; v < V; ++v) mx = std::max(mx, row[v]);
#pragma omp simd
  for (int v = 0; v < V; ++v) shifted[v] = exp_vectorizable(row[v] - mx);
  double sum = 0.0;
  for (int v = 0; v < V; ++v) sum += shifted[v];
  return {mx, sum};
}

// The row loop with per-row losses written and the loss total summed over fixed
// blocks in order (the same total for any thread count).
template <typename RowFn>
double for_rows(int64_t N, int V, RowFn&& row_fn) {
  constexpr int64_t kRowsPerBlock = 256;
  const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<double> block_sums(static_cast<size_t>(blocks), 0.0);
  parallel_for(blocks, [&](int64_t block_begin, int64_t block_end) {
    std::vector<float> shifted(V);
    for (int64_t block = block_begin; block < block_end; ++block) {
      double sum = 0.0;
      for (int64_t n = block * kRowsPerBlock; n < std::min(N, (block + 1) * kRowsPerBlock); ++n)
        sum += row_fn(n, shifted.data());
      block_sums[block] = sum;
    }
  });
  double total = 0.0;
  for (double s : block_sums) total += s;
  return total;
}

void check(int64_t N, int V) {
  SPT_CHECK(N >= 1 && V >= 256, "cross-entropy dims N=", N, " V=", V,
            " need N >= 1 and V >= 256 so that every uint8 target is a class");
}

}  // namespace

double cross_entropy_forward(const float* logits, const uint8_t* targets, int64_t N, int V, float* losses) {
  check(N, V);
  return for_rows(N, V, [&](int64_t n, float* shifted) {
    const float* row = logits + n * V;
    const double loss = row_softmax(row, V, shifted).loss(row, targets[n]);
    losses[n] = static_cast<float>(loss);
    return loss;
  });
}

double cross_entropy_forward_backward(const float* logits, const uint8_t* targets, int64_t N, int V, float grad_scale,
                                      float* losses, float* dlogits) {
  check(N, V);
  return for_rows(N, V, [&](int64_t n, float* shifted) {
    const float* row = logits + n * V;
    const RowSoftmax stats = row_softmax(row, V, shifted);
    const double loss = stats.loss(row, targets[n]);
    if (losses != nullptr) losses[n] = static_cast<float>(loss);
    const float scale = static_cast<float>(grad_scale / stats.sum);
    float* drow = dlogits + n * V;
#pragma omp simd
    for (int v = 0; v < V; ++v) drow[v] = scale * shifted[v];
    drow[targets[n]] -= grad_scale;
    return loss;
  });
}

}  // namespace spt::cpu
