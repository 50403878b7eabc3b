// Counter-based dropout: one Philox block gives the uniforms of four consecutive
// elements (uniform01(key, e) takes word e % 4 of block e / 4).
#include "ops/dropout.h"

#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"

namespace spt {

uint64_t dropout_key(uint64_t seed, int64_t micro_step, int layer, int branch) {
  return rng_key(seed, static_cast<uint64_t>(micro_step), static_cast<uint64_t>(layer), static_cast<uint64_t>(branch));
}

namespace cpu {
namespace {

// Calls fn(e, keep_scale) for every e in [0, n), keep_scale being 0 or 1/(1-p).
template <typename Fn>
void for_mask(uint64_t key, float p, int64_t n, Fn&& fn) {
  SPT_CHECK(p >= 0.0f && p < 1.0f, "dropout rate ", p, " must be in [0, 1)");
  const float keep_scale = 1.0f / (1.0f - p);
  const int64_t groups = (n + 3) / 4;
  parallel_for(groups, [&](int64_t begin, int64_t end) {
    for (int64_t group = begin; group < end; ++group) {
      const auto words = Philox::block(key, static_cast<uint64_t>(group));
      for (int64_t lane = 0; lane < 4 && group * 4 + lane < n; ++lane) {
        const float u = static_cast<float>(words[lane] >> 8) * (1.0f / 16777216.0f);
        fn(group * 4 + lane, u >= p ? keep_scale : 0.0f);
      }
    }
  }, 1024);
}

}  // namespace

void dropout_apply(uint64_t key, float p, int64_t n, float* x) {
  for_mask(key, p, n, [&](int64_t e, float scale) { x[e] *= scale; });
}

void dropout_add(uint64_t key, float p, const float* x, const float* residual, int64_t n, float* out) {
  if (p == 0.0f) {
    parallel_for(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t e = begin; e < end; ++e) out[e] = residual[e] + x[e];
    }, 16384);
    return;
  }
  for_mask(key, p, n, [&](int64_t e, float scale) { out[e] = residual[e] + x[e] * scale; });
}

}  // namespace cpu
}  // namespace spt
