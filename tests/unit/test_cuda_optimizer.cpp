// The CUDA training step's whole-buffer ops (ops/cuda/optimizer.h: AdamW with its compute
// copy, the weight average, sum of squares, scale, conversion) against the CPU optimizer
// and the CPU's arithmetic on random inputs. Tolerances, sentinels and the repeat check:
// cuda_ops_test_util.h.
#include <gtest/gtest.h>

#ifdef SPT_HAVE_CUDA

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/model.h"
#include "ops/cuda/optimizer.h"
#include "train/optimizer.h"
#include "cuda_ops_test_util.h"
#include "cuda_test_util.h"

namespace spt {
namespace {

using namespace cuda_ops_test;

TEST(CudaOps, AdamWMatchesTheCpuOptimizer) {
  SPT_REQUIRE_CUDA_DEVICE();
  const ModelConfig mc = testing_support::small_strided_config();
  for (DType dtype : kTypes) {
    const std::string context = message("compute copy ", cuda::dtype_name(dtype));
    SCOPED_TRACE(context);
    Model model(mc);
    model.init(3);
    for (float& w : model.weights()) w += 0.01f;  // decay is visible on tensors initialized to 0
    const int64_t n = model.params().total();
    const size_t count = static_cast<size_t>(n);
    // Hyperparameters that are fp32 values, so the CPU's doubles and the device's floats agree.
    TrainConfig config;
    config.weight_decay = static_cast<double>(0.1f);
    config.beta1 = static_cast<double>(0.9f);
    config.beta2 = static_cast<double>(0.95f);
    config.eps = static_cast<double>(1e-8f);
    const float lrs[] = {1e-3f, 2e-3f, 5e-4f, 1e-2f};
    const float grad_scale = 0.37f;

    std::vector<cuda::ParamSegment> segments;
    for (const ParamInfo& p : model.params().all()) segments.push_back({p.offset, p.size, p.decay});
    DeviceBuffer<cuda::ParamSegment> segments_dev(segments.size());
    segments_dev.upload(segments.data(), segments.size());
    DeviceArray w_dev(DType::f32, count), g_dev(DType::f32, count), m_dev(DType::f32, count), v_dev(DType::f32, count),
        copy_dev(dtype, count);
    w_dev.upload(model.weights());
    m_dev.upload(std::vector<float>(count, 0.0f));
    v_dev.upload(std::vector<float>(count, 0.0f));
    OptimizerState state(n);
    for (int step = 1; step <= 4; ++step) {
      const uint64_t key = rng_key(step, 0x67726164);
      std::vector<float> grads(count);
      for (size_t i = 0; i < count; ++i)
        grads[i] = i % 7 == 3 ? 0.0f : static_cast<float>(std::pow(10.0, static_cast<double>(i % 5) - 3.0) * normal01(key, i));
      const std::vector<float> m_old = state.exp_avg, v_old = state.exp_avg_sq, w_old = model.weights();
      for (size_t i = 0; i < count; ++i) model.grads()[i] = grads[i] * grad_scale;  // clip_gradients' scaling
      optimizer_step(model, state, config, lrs[step - 1]);

      g_dev.upload(grads);
      cuda::AdamWParams params;
      params.lr = lrs[step - 1];
      params.beta1 = 0.9f;
      params.beta2 = 0.95f;
      params.eps = 1e-8f;
      params.weight_decay = 0.1f;
      params.step = step;
      params.grad_scale = grad_scale;
      cuda::adamw_step(segments_dev.data(), static_cast<int>(segments.size()), n, params, w_dev.floats(),
                       g_dev.floats(), m_dev.floats(), v_dev.floats(), dtype, copy_dev.data());
      sync();
      // Both sides evaluate the same fp64 expressions; they can differ where fused
      // multiply-adds move an fp64 value across an fp32 rounding boundary (one ulp), and
      // such differences carry over from step to step.
      const double s = step, lr = lrs[step - 1];
      const auto w = w_dev.download(), m = m_dev.download(), v = v_dev.download(), copy = copy_dev.download();
      const std::string at = message(context, ", step ", step);
      compare("adamw exp_avg", at, DType::f32, m, state.exp_avg, [&](size_t i) {
        return 4 * kU * s * (std::fabs(state.exp_avg[i]) + std::fabs(m_old[i]) + std::fabs(model.grads()[i]));
      });
      compare("adamw exp_avg_sq", at, DType::f32, v, state.exp_avg_sq, [&](size_t i) {
        const double g = model.grads()[i];
        return 4 * kU * s * (std::fabs(state.exp_avg_sq[i]) + std::fabs(v_old[i]) + g * g);
      });
      compare("adamw weights", at, DType::f32, w, model.weights(), [&](size_t i) {
        return 8 * kU * s * (std::fabs(model.weights()[i]) + std::fabs(w_old[i]) + 16 * lr);
      });
      EXPECT_EQ(copy.touched, 0) << "adamw compute copy (" << at << "): guard written";
      int copy_mismatches = 0;
      for (size_t i = 0; i < count; ++i) {
        const float want = round_to(dtype, w.values[i]);
        if (std::memcmp(&copy.values[i], &want, 4) != 0) ++copy_mismatches;
      }
      EXPECT_EQ(copy_mismatches, 0) << "adamw compute copy (" << at << ") is not the weights rounded to the type";
    }
  }
}

TEST(CudaOps, SumOfSquares) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{1000}, int64_t{262147}, (int64_t{1} << 21) + 1})
    for (size_t offset : {0, 1}) {
      const std::string context = message("n ", n, ", offset ", offset);
      const std::vector<float> x = random_values(static_cast<size_t>(n), DType::f32, 3.0);
      long double want = 0;
      for (float e : x) want += static_cast<long double>(e) * e;
      DeviceArray x_dev(DType::f32, static_cast<size_t>(n), offset);
      x_dev.upload(x);
      const double got = cuda::sum_of_squares(x_dev.floats(), n);
      const double again = cuda::sum_of_squares(x_dev.floats(), n);
      const double allowed = 2.0 * static_cast<double>(n) * kU64 * static_cast<double>(want);
      EXPECT_LE(std::fabs(got - static_cast<double>(want)), allowed)
          << context << ": got " << got << ", want " << static_cast<double>(want);
      EXPECT_EQ(std::memcmp(&got, &again, sizeof(double)), 0) << context << ": two runs differ";
    }
  for (float bad : {INFINITY, NAN}) {
    std::vector<float> x = random_values(5000, DType::f32);
    x[4321] = bad;
    DeviceArray x_dev(DType::f32, x.size());
    x_dev.upload(x);
    EXPECT_FALSE(std::isfinite(cuda::sum_of_squares(x_dev.floats(), static_cast<int64_t>(x.size())))) << bad;
  }
}

TEST(CudaOps, Scale) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (int64_t n : {1, 5, 1003, 65536})
    for (size_t offset : {0, 1}) {
      const std::string context = message("n ", n, ", offset ", offset);
      const std::vector<float> x = random_values(static_cast<size_t>(n), DType::f32);
      std::vector<float> want(x);
      for (float& e : want) e *= 0.37f;
      DeviceArray x_dev(DType::f32, x.size(), offset);
      x_dev.upload(x);
      cuda::scale(x_dev.floats(), n, 0.37f);
      sync();
      compare_exact("scale", context, DType::f32, x_dev.download(), want);
    }
}

// The weight average computes the CPU's expression with the same roundings: equal bits.
TEST(CudaOps, EmaUpdateMatchesTheCpuBitForBit) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (int64_t n : {1, 1003, 262147})
    for (double decay : {0.0, 0.9, 0.999, 0.9999}) {
      const std::string context = message("n ", n, ", decay ", decay);
      std::vector<float> want = random_values(static_cast<size_t>(n), DType::f32);
      DeviceArray ema_dev(DType::f32, want.size()), w_dev(DType::f32, want.size());
      ema_dev.upload(want);
      for (int step = 0; step < 3; ++step) {
        const std::vector<float> weights = random_values(static_cast<size_t>(n), DType::f32);
        ema_update(weights, want, decay);
        w_dev.upload(weights);
        cuda::ema_update(w_dev.floats(), ema_dev.floats(), n, decay);
        sync();
      }
      compare_exact("ema_update", context, DType::f32, ema_dev.download(), want);
    }
}

TEST(CudaOps, ConversionRoundsToNearestEven) {
  SPT_REQUIRE_CUDA_DEVICE();
  // Random values over many binades, plus ties, overflow, subnormals, zeros and infinities.
  std::vector<float> values = random_values(10001, DType::f32);
  const uint64_t key = rng_key(next_seed(), 0x6376);
  for (size_t i = 0; i < values.size(); ++i) values[i] *= std::ldexp(1.0f, static_cast<int>(uniform_int(key, i, 60)) - 30);
  for (float special : {0.0f, -0.0f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048,
                        65504.0f, 65520.0f, 1e6f, 3e-8f, 6e-5f, 1e-40f, -1e-40f, 3.4e38f, INFINITY, -INFINITY})
    values.push_back(special);
  for (DType dtype : kTypes)
    for (size_t offset : {0, 1}) {
      const std::string context = message(cuda::dtype_name(dtype), ", offset ", offset);
      const int64_t n = static_cast<int64_t>(values.size());
      DeviceArray src(DType::f32, values.size(), offset), dst(dtype, values.size(), offset);
      src.upload(values);
      cuda::convert_from_f32(src.floats(), n, dtype, dst.data());
      sync();
      compare_exact("convert_from_f32", context, dtype, dst.download(), values);
      // Back to fp32: every 16-bit pattern that is not a NaN converts exactly.
      std::vector<float> patterns;
      if (dtype == DType::f32) {
        patterns = values;
      } else {
        for (uint32_t bits = 0; bits < 65536; ++bits) {
          const float x = half_value(dtype, static_cast<uint16_t>(bits));
          if (!std::isnan(x)) patterns.push_back(x);
        }
      }
      DeviceArray narrow(dtype, patterns.size(), offset), wide(DType::f32, patterns.size(), offset);
      narrow.upload(patterns);
      cuda::convert_to_f32(narrow.data(), static_cast<int64_t>(patterns.size()), dtype, wide.floats());
      sync();
      const auto got = wide.download();
      int mismatches = 0;
      for (size_t i = 0; i < patterns.size(); ++i)
        if (std::memcmp(&got.values[i], &patterns[i], 4) != 0) ++mismatches;
      EXPECT_EQ(mismatches, 0) << "convert_to_f32 (" << context << ")";
      EXPECT_EQ(got.touched, 0) << "convert_to_f32 (" << context << "): guard written";
    }
}

}  // namespace
}  // namespace spt

#endif  // SPT_HAVE_CUDA
