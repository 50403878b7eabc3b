// LayerNorm with fp64 row statistics. The parameter gradients are summed per fixed
// block of rows and the blocks are added in order, so the result is the same for any
// thread count.
#include "ops/layernorm.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace spt::cpu {
namespace {
constexpr int64_t kRowsPerBlock = 64;
}

void layernorm_forward(const float* x, const float* weight, const float* bias, int64_t N, int C, float* y, float* mean,
                       float* rstd) {
  SPT_CHECK(N >= 1 && C >= 1, "layernorm dims N=", N, " C=", C, " must be positive");
  parallel_for(N, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const float* xr = x + n * C;
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int c = 0; c < C; ++c) sum += xr[c];
      const double mu = sum / C;
      double sq = 0.0;
#pragma omp simd reduction(+ : sq)
      for (int c = 0; c < C; ++c) sq += (xr[c] - mu) * (xr[c] - mu);
      const double r = 1.0 / std::sqrt(sq / C + kLayerNormEps);
      const float mu_f = static_cast<float>(mu), r_f = static_cast<float>(r);
      mean[n] = mu_f;
      rstd[n] = r_f;
      float* yr = y + n * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) yr[c] = (xr[c] - mu_f) * r_f * weight[c] + bias[c];
    }
  }, 64);
}

void layernorm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* dy,
                        int64_t N, int C, float* dx, bool accumulate_dx, float* dweight, float* dbias) {
  SPT_CHECK(N >= 1 && C >= 1, "layernorm dims N=", N, " C=", C, " must be positive");
  const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<double> partial(static_cast<size_t>(blocks) * 2 * C, 0.0);  // (blocks, 2, C): dweight, dbias
  parallel_for(blocks, [&](int64_t block_begin, int64_t block_end) {
    std::vector<float> xhat(C);
    for (int64_t block = block_begin; block < block_end; ++block) {
      double* dw_part = partial.data() + block * 2 * C;
      double* db_part = dw_part + C;
      const int64_t row_end = std::min(N, (block + 1) * kRowsPerBlock);
      for (int64_t n = block * kRowsPerBlock; n < row_end; ++n) {
        const float* xr = x + n * C;
        const float* dyr = dy + n * C;
        const float mu = mean[n], r = rstd[n];
        // dx = r * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight
        double sum_g = 0.0, sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (int c = 0; c < C; ++c) {
          xhat[c] = (xr[c] - mu) * r;
          const float g = dyr[c] * weight[c];
          sum_g += g;
          sum_gx += static_cast<double>(g) * xhat[c];
          dw_part[c] += static_cast<double>(dyr[c]) * xhat[c];
          db_part[c] += dyr[c];
        }
        const float mean_g = static_cast<float>(sum_g / C), mean_gx = static_cast<float>(sum_gx / C);
        float* dxr = dx + n * C;
        if (accumulate_dx) {
#pragma omp simd
          for (int c = 0; c < C; ++c) dxr[c] += r * (dyr[c] * weight[c] - mean_g - xhat[c] * mean_gx);
        } else {
#pragma omp simd
          for (int c = 0; c < C; ++c) dxr[c] = r * (dyr[c] * weight[c] - mean_g - xhat[c] * mean_gx);
        }
      }
    }
  });
  parallel_for(C, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double dw = 0.0, db = 0.0;
      for (int64_t block = 0; block < blocks; ++block) {
        dw += partial[block * 2 * C + c];
        db += partial[block * 2 * C + C + c];
      }
      dweight[c] = static_cast<float>(dweight[c] + dw);
      dbias[c] = static_cast<float>(dbias[c] + db);
    }
  }, 64);
}

}  // namespace spt::cpu
