// gelu(x) = x * sigmoid(1.702 x), with a vectorizable exp.
#include "ops/activation.h"

#include "core/parallel.h"
#include "ops/cpu/vector_math.h"

namespace spt::cpu {
namespace {
inline float sigmoid_of_slope(float x) { return 1.0f / (1.0f + exp_vectorizable(-kGeluSlope * x)); }
constexpr int64_t kMinChunk = 16384;
}  // namespace

void gelu_forward(const float* x, int64_t n, float* y) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t e = begin; e < end; ++e) y[e] = x[e] * sigmoid_of_slope(x[e]);
  }, kMinChunk);
}

void gelu_backward(const float* x, const float* dy, int64_t n, float* dx) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t e = begin; e < end; ++e) {
      const float s = sigmoid_of_slope(x[e]);
      dx[e] = dy[e] * (s + kGeluSlope * x[e] * s * (1.0f - s));
    }
  }, kMinChunk);
}

}  // namespace spt::cpu
