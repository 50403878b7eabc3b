// Which CUDA attention kernels serve a call (cuda::attention_path: "fast" pattern-specific,
// "tensor-core" block layout, "simt" reference) and that any two of them agree on the same
// inputs, forward and backward, within the rounding error of the type (tolerance below).
// The parity of each path with the CPU oracle is test_cuda_attention.cpp's.
#include <gtest/gtest.h>

#ifdef SPT_HAVE_CUDA

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/attention.h"
#include "ops/cuda/attention_plan.h"
#include "cuda_test_util.h"

namespace spt {
namespace {

using cuda::DType;

using namespace cuda_test;

TEST(CudaAttention, TensorCorePathIsSelected) {
  SPT_REQUIRE_CUDA_DEVICE();
  const Pattern pattern({PatternKind::fixed, 64, 16, 1, CombineMode::merged, 2});
  AttentionShape shape;
  shape.B = 1;
  shape.T = 256;
  shape.H = 2;
  for (int block : {16, 32, 64, 128}) {
    cuda::DeviceAttentionPlan plan = cuda::make_device_plan(pattern, 0, shape.T, block);
    for (int D : {32, 64, 128}) {
      shape.Dk = shape.Dv = D;
      EXPECT_STREQ(cuda::attention_path(plan, shape, DType::bf16), "fast");
      EXPECT_STREQ(cuda::attention_path(plan, shape, DType::f16), "fast");
      plan.fast = false;
      const std::string want = block >= 64 ? "tensor-core" : "simt";
      EXPECT_EQ(cuda::attention_path(plan, shape, DType::bf16), want) << "BS " << block << ", D " << D;
      EXPECT_EQ(cuda::attention_path(plan, shape, DType::f16), want) << "BS " << block << ", D " << D;
      EXPECT_STREQ(cuda::attention_path(plan, shape, DType::f32), "simt");
      plan.tensor_cores = false;
      EXPECT_STREQ(cuda::attention_path(plan, shape, DType::bf16), "simt");
      plan.tensor_cores = true;
      plan.fast = true;
    }
  }
  // A plan without the block layout serves the fast path alone.
  const cuda::DeviceAttentionPlan bare = cuda::make_device_plan(pattern, 0, shape.T, 64, false);
  shape.Dk = shape.Dv = 64;
  EXPECT_STREQ(cuda::attention_path(bare, shape, DType::bf16), "fast");
  DeviceBuffer<float> buf(5 * 256 * 2 * 64);
  float* p = buf.data();
  const size_t n = 256 * 2 * 64;
  EXPECT_THROW(cuda::attention_forward(bare, shape, DType::f32, p, p + n, p + 2 * n, p + 3 * n, p + 4 * n), Error);
}

// Two kernel paths on the same inputs. Each is within twice the rounding error of the exact
// result plus the fp32 term (the parity tests above), and a rounding error is at most u |x|
// (u = 2^-8 for bf16, 2^-11 for fp16), so they may differ by 4 u |x| plus twice the fp32
// term, in L2 over each tensor.
struct Agreement {
  PatternSpec spec;
  int64_t T;
  int D;
  int block;
};

// A plan setting and the path it must select.
struct PathSetup {
  bool fast;
  bool tensor_cores;
  const char* path;
  bool deterministic = false;
};

void expect_paths_agree(const Agreement& a, DType dtype, PathSetup first, PathSetup second) {
  const Pattern pattern(a.spec);
  SCOPED_TRACE(message(pattern.describe(), ", T ", a.T, ", D ", a.D, ", BS ", a.block, ", ", name(dtype), ": ",
                       first.path, " vs ", second.path));
  AttentionShape shape;
  shape.B = 2;
  shape.T = a.T;
  shape.H = a.spec.heads;
  shape.Dk = shape.Dv = a.D;
  const size_t n = static_cast<size_t>(shape.B * shape.T * shape.H * a.D);
  const size_t n_lse = static_cast<size_t>(shape.B * shape.H * shape.T);
  DeviceArray q(dtype, n), k(dtype, n), v(dtype, n), dout(dtype, n);
  std::vector<float> host(n);
  uint64_t stream = 90;
  for (DeviceArray* t : {&q, &k, &v, &dout}) {
    for (size_t e = 0; e < n; ++e) host[e] = normal01(rng_key(++stream), e);
    t->upload(host);
  }
  cuda::DeviceAttentionPlan plan_a = cuda::make_device_plan(pattern, 0, a.T, a.block);
  cuda::DeviceAttentionPlan plan_b = cuda::make_device_plan(pattern, 0, a.T, a.block);
  plan_a.fast = first.fast;
  plan_a.tensor_cores = first.tensor_cores;
  plan_b.fast = second.fast;
  plan_b.tensor_cores = second.tensor_cores;
  plan_a.deterministic = first.deterministic;
  plan_b.deterministic = second.deterministic;
  ASSERT_STREQ(cuda::attention_path(plan_a, shape, dtype), first.path);
  ASSERT_STREQ(cuda::attention_path(plan_b, shape, dtype), second.path);

  struct Run {
    DeviceArray out, lse, dq, dk, dv;
  };
  auto make_run = [&] {
    return Run{DeviceArray(dtype, n), DeviceArray(DType::f32, n_lse), DeviceArray(dtype, n), DeviceArray(dtype, n),
               DeviceArray(dtype, n)};
  };
  Run run_a = make_run(), run_b = make_run();
  cuda::attention_forward(plan_b, shape, dtype, q.data(), k.data(), v.data(), run_b.out.data(), run_b.lse.floats());
  cuda::attention_forward(plan_a, shape, dtype, q.data(), k.data(), v.data(), run_a.out.data(), run_a.lse.floats());
  // Both backward passes differentiate the second path's out and lse.
  for (auto [plan, run] : {std::pair{&plan_b, &run_b}, std::pair{&plan_a, &run_a}})
    cuda::attention_backward(*plan, shape, dtype, q.data(), k.data(), v.data(), run_b.out.data(), run_b.lse.floats(),
                             dout.data(), run->dq.data(), run->dk.data(), run->dv.data());
  SPT_CUDA_CHECK(cudaDeviceSynchronize());

  const double u = dtype == DType::bf16 ? 1.0 / 256 : 1.0 / 2048;
  const double fwd_rel = 32.0 * kUnitRoundoff * std::sqrt(2.0 * a.D + static_cast<double>(a.T));
  auto compare = [&](const char* what, const DeviceArray& got_dev, const DeviceArray& want_dev, size_t count,
                     double fp32_rel, double rounding) {
    const DeviceArray::Host got = got_dev.download(), want = want_dev.download();
    double err2 = 0, scale2 = 0, round2 = 0;
    for (size_t e = 0; e < count; ++e) {
      const double x = got.value(e), y = want.value(e);
      if (std::isinf(y) && y < 0) {
        EXPECT_TRUE(std::isinf(x) && x < 0) << what << " element " << e << ": " << x << " where -inf";
        continue;
      }
      ASSERT_TRUE(std::isfinite(x)) << what << " element " << e << " is " << x;
      err2 += (x - y) * (x - y);
      scale2 += y * y + 1.0;
      round2 += rounding * rounding * y * y;
    }
    const double allowed = 2.0 * fp32_rel * std::sqrt(scale2) + 4.0 * std::sqrt(round2);
    EXPECT_LE(std::sqrt(err2), allowed) << what << ": the two paths differ";
  };
  compare("out", run_a.out, run_b.out, n, fwd_rel, u);
  compare("lse", run_a.lse, run_b.lse, n_lse, fwd_rel, 0.0);
  compare("dq", run_a.dq, run_b.dq, n, 4.0 * fwd_rel, u);
  compare("dk", run_a.dk, run_b.dk, n, 4.0 * fwd_rel, u);
  compare("dv", run_a.dv, run_b.dv, n, 4.0 * fwd_rel, u);
}

constexpr PathSetup kFastPath{true, true, "fast"};
constexpr PathSetup kFastDeterministicPath{true, true, "fast", true};
constexpr PathSetup kTensorCorePath{false, true, "tensor-core"};
constexpr PathSetup kSimtPath{false, false, "simt"};

TEST(CudaAttention, SimtAndTensorCorePathsAgree) {
  SPT_REQUIRE_CUDA_DEVICE();
  const std::vector<Agreement> cases = {
      {{PatternKind::dense, 1, 1, 1, CombineMode::merged, 2}, 300, 64, 64},
      {{PatternKind::strided, 48, 1, 1, CombineMode::merged, 2}, 500, 64, 128},
      {{PatternKind::fixed, 64, 16, 2, CombineMode::heads, 2}, 450, 128, 64},
      {{PatternKind::local, 40, 1, 1, CombineMode::merged, 2}, 257, 32, 64}};
  for (DType dtype : {DType::bf16, DType::f16})
    for (const Agreement& a : cases) expect_paths_agree(a, dtype, kTensorCorePath, kSimtPath);
}

// The pattern-specific kernels against the block-layout ones, on the paper's settings and
// on strides and summary widths that do not divide the 64-row tile.
TEST(CudaAttention, FastAndBlockLayoutPathsAgree) {
  SPT_REQUIRE_CUDA_DEVICE();
  const std::vector<Agreement> cases = {
      {{PatternKind::dense, 1, 1, 1, CombineMode::merged, 2}, 700, 64, 64},
      {{PatternKind::local, 100, 1, 1, CombineMode::merged, 2}, 777, 64, 64},
      {{PatternKind::strided, 128, 1, 1, CombineMode::merged, 2}, 2048, 64, 64},
      {{PatternKind::strided, 96, 1, 1, CombineMode::heads, 2}, 3072, 128, 64},
      {{PatternKind::strided, 40, 1, 1, CombineMode::interleaved, 2}, 1111, 32, 64},
      {{PatternKind::fixed, 128, 32, 1, CombineMode::merged, 2}, 2048, 64, 64},
      {{PatternKind::fixed, 96, 32, 2, CombineMode::merged, 2}, 3072, 128, 64},
      {{PatternKind::fixed, 100, 24, 4, CombineMode::heads, 4}, 1500, 64, 64},
      {{PatternKind::fixed, 256, 32, 1, CombineMode::interleaved, 2}, 1999, 32, 64}};
  for (DType dtype : {DType::bf16, DType::f16})
    for (const Agreement& a : cases) expect_paths_agree(a, dtype, kFastPath, kTensorCorePath);
}

// The fast backward with dQ accumulated in the dK/dV pass (head dim 64 on sm_90a) against
// its deterministic form with a separate dQ pass (the same kernels elsewhere).
TEST(CudaAttention, AccumulatedAndDeterministicDqAgree) {
  SPT_REQUIRE_CUDA_DEVICE();
  const std::vector<Agreement> cases = {
      {{PatternKind::dense, 1, 1, 1, CombineMode::merged, 2}, 700, 64, 64},
      {{PatternKind::local, 100, 1, 1, CombineMode::merged, 2}, 777, 64, 64},
      {{PatternKind::strided, 128, 1, 1, CombineMode::merged, 2}, 2048, 64, 64},
      {{PatternKind::fixed, 128, 32, 1, CombineMode::merged, 2}, 2048, 64, 64},
      {{PatternKind::fixed, 100, 24, 4, CombineMode::heads, 4}, 1500, 64, 64},
      {{PatternKind::fixed, 40, 8, 1, CombineMode::interleaved, 2}, 1, 64, 64}};
  for (DType dtype : {DType::bf16, DType::f16})
    for (const Agreement& a : cases) expect_paths_agree(a, dtype, kFastPath, kFastDeterministicPath);
}

}  // namespace
}  // namespace spt

#endif  // SPT_HAVE_CUDA
