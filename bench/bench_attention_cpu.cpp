// CPU sparse attention, forward + backward, against the machine's sgemm rate measured
// in the same run. Effective GFLOP/s count only attended pairs: forward 4*D*pairs,
// forward + backward 3.5 times that (the backward's five products against the
// forward's two).
//   build/bench/bench_attention_cpu --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

#include "core/rng.h"
#include "ops/attention.h"
#include "pattern/block_layout.h"

namespace {

using namespace spt;

constexpr int kHeads = 8;
constexpr int kHeadDim = 64;

PatternSpec spec_for(int which) {
  switch (which) {
    case 0: return {PatternKind::dense, 1, 1, 1, CombineMode::merged, kHeads};
    case 1: return {PatternKind::strided, 128, 1, 1, CombineMode::merged, kHeads};
    case 2: return {PatternKind::fixed, 128, 8, 1, CombineMode::merged, kHeads};
    default: return {PatternKind::fixed, 128, 32, 1, CombineMode::merged, kHeads};
  }
}

void fill_random(std::vector<float>& x, uint64_t key) {
  for (size_t e = 0; e < x.size(); ++e) x[e] = normal01(key, e);
}

void BM_attention_fwd_bwd(benchmark::State& state) {
  const int64_t T = state.range(0);
  const Pattern pattern(spec_for(static_cast<int>(state.range(1))));
  const AttentionPlan plan = make_plan(pattern, 0);
  AttentionShape shape;
  shape.B = 1;
  shape.T = T;
  shape.H = kHeads;
  shape.Dk = shape.Dv = kHeadDim;
  const size_t n = static_cast<size_t>(T) * kHeads * kHeadDim;
  std::vector<float> q(n), k(n), v(n), out(n), dout(n), dq(n), dk(n), dv(n), lse(T * kHeads);
  fill_random(q, 1);
  fill_random(k, 2);
  fill_random(v, 3);
  fill_random(dout, 4);
  for (auto _ : state) {
    cpu::attention_forward(plan, shape, q.data(), k.data(), v.data(), out.data(), lse.data());
    cpu::attention_backward(plan, shape, q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), dq.data(),
                            dk.data(), dv.data());
    benchmark::DoNotOptimize(dv.data());
  }
  const double pairs = static_cast<double>(build_block_layout(pattern, 0, T, 64).total_pairs());
  const double flops = 3.5 * 4.0 * kHeadDim * pairs;
  state.SetLabel(pattern.describe());
  state.counters["pairs_per_query"] = pairs / (kHeads * T);
  state.counters["density"] = pairs / (kHeads * (T * (T + 1) / 2.0));
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_sgemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::vector<float> a(n * n), b(n * n), c(n * n);
  fill_random(a, 5);
  fill_random(b, 6);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_sgemm)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_attention_fwd_bwd)
    ->ArgsProduct({{4096, 16384}, {0, 1, 2, 3}})
    ->ArgNames({"T", "pattern"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1)
    ->Repetitions(1);
BENCHMARK_MAIN();
