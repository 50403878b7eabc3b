// Training throughput of the CPU model: forward + backward with recomputation, no
// dropout, 4 layers, width 256, 4 heads, strided attention (l = 32), and the share of
// the time spent in sgemm (MatmulStats).
//   OMP_NUM_THREADS=2 build/bench/bench_model_cpu --benchmark_counters_tabular=true
// The program first sets the thread pools' runtime settings and re-executes itself
// (cpu::reexec_with_cpu_runtime_settings); the settings in use are printed in the context.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cpu_runtime.h"
#include "core/rng.h"
#include "model/model.h"
#include "ops/linear.h"

namespace {

using namespace spt;

ModelConfig bench_config(int T) {
  ModelConfig c;
  c.layers = 4;
  c.width = 256;
  c.heads = 4;
  c.ctx = T;
  c.ff_ratio = 4.0;
  c.pattern = "strided";
  c.stride = 32;
  c.mode = "merged";
  c.pos_sizes = {T / 32, 32};
  return c;
}

void BM_model_forward_backward(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  const int B = static_cast<int>(state.range(1));
  Model model(bench_config(T));
  model.init(1);
  // Non-zero output weights so that every gradient is a real number.
  const ParamInfo& head = model.params().find("head.weight");
  for (int64_t e = 0; e < head.size; ++e) model.weights()[head.offset + e] = 0.02f * normal01(2, e);
  model.recompute = true;
  std::vector<uint8_t> tokens(static_cast<size_t>(B) * T);
  for (size_t e = 0; e < tokens.size(); ++e) tokens[e] = static_cast<uint8_t>(uniform_int(3, e, 256));
  model.zero_grads();
  model.forward_backward(tokens.data(), B, DropoutContext{}, 1.0f);  // warm-up: buffers, page faults
  cpu::reset_matmul_stats();
  double loss = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    loss = model.forward_backward(tokens.data(), B, DropoutContext{}, 1.0f);
    benchmark::DoNotOptimize(loss);
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const MatmulStats& stats = cpu::matmul_stats();
  const double iterations = static_cast<double>(state.iterations());
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(B) * T, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["sgemm_s_per_step"] = stats.seconds / iterations;
  state.counters["sgemm_share"] = stats.seconds / elapsed;
  state.counters["sgemm_GFLOPs"] = stats.seconds > 0 ? stats.flops / stats.seconds * 1e-9 : 0.0;
  state.counters["activation_MiB"] = static_cast<double>(model.activation_bytes()) / (1 << 20);
  state.counters["loss"] = loss;
  state.SetLabel("T=" + std::to_string(T) + " B=" + std::to_string(B));
}

}  // namespace

BENCHMARK(BM_model_forward_backward)
    ->Args({1024, 4})
    ->Args({4096, 1})
    ->ArgNames({"T", "B"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

int main(int argc, char** argv) {
  spt::cpu::reexec_with_cpu_runtime_settings(argv);
  benchmark::AddCustomContext("blas_kernels", spt::cpu::blas_core_name());
  for (const char* name : {"OMP_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "GOMP_SPINCOUNT"})
    benchmark::AddCustomContext(name, std::getenv(name) != nullptr ? std::getenv(name) : "unset");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
