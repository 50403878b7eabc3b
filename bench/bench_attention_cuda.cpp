// CUDA sparse attention speed: forward and forward + backward times (CUDA events, warm-up,
// median of the timed runs) and effective TFLOP/s on attended pairs (forward 4 D pairs B,
// pairs summed over heads; forward + backward 3.5 times that). Inputs are bf16 unit normals,
// drawn afresh for every case.
//   build/bench/bench_attention_cuda [--block 64|128|0|fast] [--runs N] [--max-T N] [--deterministic 0|1]
// Measures the pattern-specific kernels ("fast", block 0 in the output) and the block-layout
// tensor-core kernels at BS 64 and 128 (--block picks one of those, 0, the default, both, and
// fast none). --deterministic 1 measures the fast backward with its separate dQ pass (bit for
// bit repeatable) instead of dQ accumulated in the dK/dV pass.
// Prints one JSON line per (case, pattern, path) and a table; bench/attention_suite.sh
// compares the lines with PyTorch's kernels.
// Patterns: fixed (merged, every head the last c columns of each l-block), strided
// (merged, l) and dense causal.
#ifdef SPT_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/rng.h"
#include "ops/attention.h"
#include "ops/cuda/attention_plan.h"
#include "pattern/block_layout.h"

namespace {

using namespace spt;

struct BenchCase {
  int64_t T;
  int B, H, D, l, c;
};

const BenchCase kCases[] = {{4096, 4, 8, 64, 64, 16},
                            {12288, 1, 8, 64, 128, 32},
                            {16384, 1, 8, 64, 128, 32},
                            {65536, 1, 8, 64, 256, 32},
                            {3072, 4, 2, 128, 96, 32}};

uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// A device tensor of n bf16 unit normals (stream `key`); never all zeros.
DeviceBuffer<uint16_t> random_bf16(size_t n, uint64_t key) {
  std::vector<uint16_t> host(n);
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < static_cast<int64_t>(n); ++e) host[e] = bf16_bits(normal01(key, static_cast<uint64_t>(e)));
  DeviceBuffer<uint16_t> device(n);
  device.upload(host.data(), n);
  return device;
}

// A pair of CUDA events that time what is queued between them.
class EventTimer {
 public:
  EventTimer() {
    SPT_CUDA_CHECK(cudaEventCreate(&start_));
    SPT_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  template <typename F>
  float ms(F&& body) {
    SPT_CUDA_CHECK(cudaEventRecord(start_));
    body();
    SPT_CUDA_CHECK(cudaEventRecord(stop_));
    SPT_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    SPT_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

 private:
  cudaEvent_t start_, stop_;
};

// Median over `runs` calls, each timed alone (the host's launch latency included).
template <typename F>
double median_ms(int runs, F&& body) {
  EventTimer timer;
  for (int w = 0; w < 3; ++w) body();
  std::vector<float> times;
  for (int r = 0; r < runs; ++r) times.push_back(timer.ms(body));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Mean time of `runs` calls queued back to back: the GPU time per call without the host's
// launch latency, comparable with the same measure of the PyTorch op (bench/torch_op.py).
template <typename F>
double stream_ms(int runs, F&& body) {
  EventTimer timer;
  for (int w = 0; w < 3; ++w) body();
  return timer.ms([&] {
           for (int r = 0; r < runs; ++r) body();
         }) /
         runs;
}

struct Result {
  std::string pattern;
  BenchCase c;
  int block;
  std::string path;
  double density, fwd_ms, fwdbwd_ms, fwd_tflops, fwdbwd_tflops, fwd_stream_ms, fwdbwd_stream_ms;
};

Result run_case(const BenchCase& c, const std::string& pattern_name, int block, int runs, bool deterministic,
               uint64_t seed) {
  PatternSpec spec{PatternKind::dense, 1, 1, 1, CombineMode::merged, c.H};
  if (pattern_name == "fixed") spec = {PatternKind::fixed, c.l, c.c, 1, CombineMode::merged, c.H};
  if (pattern_name == "strided") spec = {PatternKind::strided, c.l, 1, 1, CombineMode::merged, c.H};
  const Pattern pattern(spec);
  const BlockLayout layout = build_block_layout(pattern, 0, c.T, block == 0 ? 64 : block);
  cuda::DeviceAttentionPlan plan = cuda::make_device_plan(pattern, 0, c.T, block == 0 ? 64 : block, block != 0);
  plan.fast = block == 0;
  plan.deterministic = deterministic;
  AttentionShape shape;
  shape.B = c.B;
  shape.T = c.T;
  shape.H = c.H;
  shape.Dk = shape.Dv = c.D;
  const auto dtype = cuda::DType::bf16;
  const size_t n = static_cast<size_t>(c.B) * c.T * c.H * c.D;  // (B, T, H, D) packed
  DeviceBuffer<uint16_t> q = random_bf16(n, rng_key(seed, 1)), k = random_bf16(n, rng_key(seed, 2)),
                         v = random_bf16(n, rng_key(seed, 3)), dout = random_bf16(n, rng_key(seed, 4));
  DeviceBuffer<uint16_t> out(n), dq(n), dk(n), dv(n);
  DeviceBuffer<float> lse(static_cast<size_t>(c.B) * c.H * c.T);  // (B, H, T)

  auto forward = [&] {
    cuda::attention_forward(plan, shape, dtype, q.data(), k.data(), v.data(), out.data(), lse.data());
  };
  auto forward_backward = [&] {
    forward();
    cuda::attention_backward(plan, shape, dtype, q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
                             dq.data(), dk.data(), dv.data());
  };
  Result r;
  r.pattern = pattern_name;
  r.c = c;
  r.block = block;
  r.path = cuda::attention_path(plan, shape, dtype);
  const double pairs = static_cast<double>(layout.total_pairs());  // summed over heads
  r.density = pairs / (c.H * static_cast<double>(layout.causal_pairs()));
  r.fwd_ms = median_ms(runs, forward);
  r.fwdbwd_ms = median_ms(runs, forward_backward);
  r.fwd_stream_ms = stream_ms(runs, forward);
  r.fwdbwd_stream_ms = stream_ms(runs, forward_backward);
  const double flops = 4.0 * c.D * pairs * c.B;
  r.fwd_tflops = flops / (r.fwd_ms * 1e-3) * 1e-12;
  r.fwdbwd_tflops = 3.5 * flops / (r.fwdbwd_ms * 1e-3) * 1e-12;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int block_choice = 0, runs = 20;
  bool deterministic = false;
  int64_t max_T = int64_t{1} << 30;
  for (int a = 1; a + 1 < argc; a += 2) {
    const std::string flag = argv[a];
    if (flag == "--block")
      block_choice = std::string(argv[a + 1]) == "fast" ? -1 : std::atoi(argv[a + 1]);
    else if (flag == "--runs")
      runs = std::max(20, std::atoi(argv[a + 1]));
    else if (flag == "--max-T")
      max_T = std::atoll(argv[a + 1]);
    else if (flag == "--deterministic")
      deterministic = std::atoi(argv[a + 1]) != 0;
    else {
      std::fprintf(stderr,
                   "unknown flag %s: use --block 64|128|0|fast, --runs N (>= 20), --max-T N, --deterministic 0|1\n",
                   flag.c_str());
      return 2;
    }
  }
  if (!cuda_available()) {
    std::fprintf(stderr, "bench_attention_cuda: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  SPT_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::fprintf(stderr, "device: %s\n", prop.name);
  std::vector<int> blocks = block_choice == 0    ? std::vector<int>{0, 64, 128}
                            : block_choice < 0 ? std::vector<int>{0}
                                               : std::vector<int>{0, block_choice};
  std::vector<Result> results;
  uint64_t seed = 7000;
  for (const BenchCase& c : kCases) {
    if (c.T > max_T) continue;
    for (const char* pattern : {"fixed", "strided", "dense"})
      for (int block : blocks) {
        const Result r = run_case(c, pattern, block, runs, deterministic, ++seed);
        std::printf(
            "{\"impl\": \"spt\", \"pattern\": \"%s\", \"T\": %lld, \"B\": %d, \"H\": %d, \"D\": %d, \"l\": %d, "
            "\"c\": %d, \"block\": %d, \"dtype\": \"bf16\", \"path\": \"%s\", \"deterministic\": %s, \"density\": %.5f, \"fwd_ms\": %.4f, "
            "\"fwdbwd_ms\": %.4f, \"fwd_tflops\": %.2f, \"fwdbwd_tflops\": %.2f, \"fwd_stream_ms\": %.4f, "
            "\"fwdbwd_stream_ms\": %.4f}\n",
            r.pattern.c_str(), static_cast<long long>(c.T), c.B, c.H, c.D, c.l, c.c, block, r.path.c_str(),
            deterministic ? "true" : "false", r.density, r.fwd_ms, r.fwdbwd_ms, r.fwd_tflops, r.fwdbwd_tflops,
            r.fwd_stream_ms, r.fwdbwd_stream_ms);
        std::fflush(stdout);
        results.push_back(r);
      }
  }
  std::printf("\n%-8s %6s %2s %2s %4s %4s %3s %4s %8s %10s %10s %9s %9s\n", "pattern", "T", "B", "H", "D", "l", "c",
              "BS", "density", "fwd_ms", "fwdbwd_ms", "fwd_TF/s", "all_TF/s");
  for (const Result& r : results)
    std::printf("%-8s %6lld %2d %2d %4d %4d %3d %4d %8.4f %10.3f %10.3f %9.1f %9.1f\n", r.pattern.c_str(),
                static_cast<long long>(r.c.T), r.c.B, r.c.H, r.c.D, r.c.l, r.c.c, r.block, r.density, r.fwd_ms,
                r.fwdbwd_ms, r.fwd_tflops, r.fwdbwd_tflops);
  return 0;
}

#else

#include <cstdio>

int main() {
  std::fprintf(stderr, "bench_attention_cuda: built without CUDA; configure with -DSPT_CUDA=ON\n");
  return 1;
}

#endif
