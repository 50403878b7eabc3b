// CUDA linear layers (cuBLASLt): forward and backward of the model's projections at a
// long sequence, timed with CUDA events around each call after warm-up, on random inputs.
// Run: build/bench/bench_linear_cuda (or --benchmark_filter=bf16).
#include <benchmark/benchmark.h>

#ifdef SPT_HAVE_CUDA

#include <cuda_bf16.h>

#include <cstdint>
#include <vector>

#include "core/cuda_check.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "ops/linear.h"

namespace spt {
namespace {

using cuda::DType;

// Device buffer of `count` elements of `dtype` holding scaled normal values.
DeviceBuffer<unsigned char> random_device(DType dtype, size_t count, uint64_t key, float scale) {
  DeviceBuffer<unsigned char> buffer(count * cuda::dtype_size(dtype));
  if (dtype == DType::f32) {
    std::vector<float> values(count);
    parallel_for(static_cast<int64_t>(count), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) values[i] = scale * normal01(key, i);
    }, 4096);
    buffer.upload(reinterpret_cast<const unsigned char*>(values.data()), count * 4);
  } else {
    std::vector<__nv_bfloat16> values(count);
    parallel_for(static_cast<int64_t>(count), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) values[i] = __float2bfloat16_rn(scale * normal01(key, i));
    }, 4096);
    buffer.upload(reinterpret_cast<const unsigned char*>(values.data()), count * 2);
  }
  return buffer;
}

// Arguments: N, in, out, dtype (0 fp32, 1 bf16), backward (0 forward, 1 backward with dx).
void BM_Linear(benchmark::State& state) {
  if (!cuda_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const int64_t N = state.range(0);
  const int in = static_cast<int>(state.range(1)), out = static_cast<int>(state.range(2));
  const DType dtype = state.range(3) == 0 ? DType::f32 : DType::bf16;
  const bool backward = state.range(4) != 0;
  const size_t n = static_cast<size_t>(N);
  auto x = random_device(dtype, n * in, 1, 1.0f);
  auto weight = random_device(dtype, size_t(out) * in, 2, 0.02f);
  auto dy = random_device(dtype, n * out, 3, 1.0f);
  auto bias = random_device(DType::f32, out, 4, 0.1f);
  DeviceBuffer<unsigned char> y(n * out * cuda::dtype_size(dtype)), dx(n * in * cuda::dtype_size(dtype));
  DeviceBuffer<float> dweight(size_t(out) * in), dbias(out);
  SPT_CUDA_CHECK(cudaMemset(dweight.data(), 0, dweight.size() * 4));
  SPT_CUDA_CHECK(cudaMemset(dbias.data(), 0, dbias.size() * 4));
  cuda::BlasContext blas;
  auto run = [&] {
    if (backward)
      cuda::linear_backward(blas, x.data(), weight.data(), dy.data(), N, in, out, dtype, dx.data(), false,
                            dweight.data(), dbias.data());
    else
      cuda::linear_forward(blas, x.data(), weight.data(), reinterpret_cast<const float*>(bias.data()), N, in, out,
                           dtype, dtype, y.data());
  };
  for (int i = 0; i < 5; ++i) run();
  cudaEvent_t start, stop;
  SPT_CUDA_CHECK(cudaEventCreate(&start));
  SPT_CUDA_CHECK(cudaEventCreate(&stop));
  for (auto _ : state) {
    SPT_CUDA_CHECK(cudaEventRecord(start, blas.stream()));
    run();
    SPT_CUDA_CHECK(cudaEventRecord(stop, blas.stream()));
    SPT_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    SPT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms * 1e-3);
  }
  SPT_CUDA_CHECK(cudaEventDestroy(start));
  SPT_CUDA_CHECK(cudaEventDestroy(stop));
  const double flops = (backward ? 4.0 : 2.0) * static_cast<double>(N) * in * out;
  state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
}

void LinearShapes(benchmark::internal::Benchmark* b) {
  // (in, out) of the model's products at width 512: qkv, attention output, FFN in and out.
  const int64_t shapes[][2] = {{512, 1536}, {512, 512}, {512, 2048}, {2048, 512}};
  for (int64_t dtype : {1, 0})
    for (int64_t backward : {0, 1})
      for (const auto& s : shapes) b->Args({24576, s[0], s[1], dtype, backward});
  b->ArgNames({"N", "in", "out", "bf16", "backward"});
}

BENCHMARK(BM_Linear)->Apply(LinearShapes)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace spt

#endif

BENCHMARK_MAIN();
