// Data parallelism on GPUs (run on a GPU machine; skipped elsewhere): NCCL collectives in
// a world of one, the CUDA engine through NCCL against the engine alone (bit for bit),
// gradient buckets reduced on their own stream during the backward against one
// reduce-scatter after it (bit for bit), the GPU model's reports of final gradients, and
// two processes on two GPUs against one process of the same global batch.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "model/model.h"
#include "metrics_test_util.h"
#include "temp_dir.h"
#include "test_support.h"
#include "train/engine.h"
#include "train/optimizer.h"
#ifdef SPT_HAVE_NCCL
#include "core/cuda_check.h"
#include "dist/cuda/nccl_world.h"
#include "model/cuda/cuda_model.h"
#endif

namespace spt {
namespace {

#ifdef SPT_HAVE_NCCL

using testing_support::losses_of;
using testing_support::random_tokens;
using testing_support::slurp;
using testing_support::TempDir;

int gpu_count() {
  if (!cuda_available()) return 0;
  int count = 0;
  cudaGetDeviceCount(&count);
  return count;
}

std::unique_ptr<dist::Communicator> nccl_alone() {
  dist::LaunchInfo launch;
  launch.launcher = "torchrun";
  return dist::make_nccl_communicator(launch, dist::nccl_unique_id());
}

TEST(CudaDist, NcclWorldOfOneReturnsItsInput) {
  if (gpu_count() < 1) GTEST_SKIP() << "no CUDA device";
  const std::unique_ptr<dist::Communicator> comm = nccl_alone();
  EXPECT_TRUE(comm->device_buffers());
  const std::vector<float> host = {1.5f, -2, 3, 4, 5};
  DeviceBuffer<float> x(host.size());
  x.upload(host.data(), host.size());
  comm->all_reduce_sum(x.data(), 5);
  comm->all_gather(x.data(), 5);
  comm->broadcast(x.data(), 5, 0);
  // A bucket of two pieces on the communicator's own stream; the copy below waits for it.
  comm->reduce_to_roots(x.data(), {{0, 2, 0}, {2, 5, 0}});
  comm->wait_reductions();
  std::vector<float> back(host.size());
  x.download(back.data(), back.size());
  EXPECT_EQ(back, host);
  // reduce_scatter cuts a padded buffer into equal pieces: one piece of 64 here.
  DeviceBuffer<float> padded(dist::shard_padded_size(5, 1));
  ASSERT_EQ(padded.size(), 64u);
  padded.upload(host.data(), host.size());
  comm->reduce_scatter(padded.data(), 5);
  padded.download(back.data(), back.size());
  EXPECT_EQ(back, host);
  EXPECT_EQ(dist::all_sum(*comm, 2.25), 2.25);
  std::string text(3 << 20, 'x');  // several pieces of the staging buffer
  dist::broadcast_string(*comm, text, 0);
  EXPECT_EQ(text, std::string(3 << 20, 'x'));
  comm->barrier();
}

// The model the engine tests train: 2 layers, small enough for any GPU.
ModelConfig engine_test_config() {
  ModelConfig config;
  config.layers = 2;
  config.width = 64;
  config.heads = 2;
  config.ctx = 128;
  config.stride = 16;
  config.pos_sizes = {8, 16};
  return config;
}

// Three steps of the test model (B 2, fp32, deterministic) through an engine over `comm`:
// `accumulate` micro-batches a step of loss scale 1 / accumulate, the last told to reduce
// during its backward (into buckets of `bucket` floats; 0: none).
struct EngineRun {
  std::vector<double> norms;
  std::vector<float> weights, exp_avg_sq;
  std::string describe;
};
EngineRun three_steps(dist::Communicator* comm, int64_t bucket, int accumulate, uint64_t seed) {
  const ModelConfig config = engine_test_config();
  const int B = 2;
  const std::vector<uint8_t> tokens = random_tokens(static_cast<size_t>(accumulate) * B * config.ctx, seed);
  Model model(config);
  model.init(seed + 2);
  OptimizerState optimizer(model.params().total());
  const std::unique_ptr<Engine> engine = make_engine({"cuda", "fp32", true, true, comm, bucket}, model, &optimizer);
  EXPECT_EQ(engine->optimizer_bytes(), model.params().total() * 8);
  EngineRun run;
  for (int step = 0; step < 3; ++step) {
    engine->zero_grads();
    for (int micro = 0; micro < accumulate; ++micro) {
      if (micro == accumulate - 1) engine->reduce_during_next_backward();
      engine->forward_backward(tokens.data() + micro * B * config.ctx, B, DropoutContext{}, 1.0f / accumulate);
    }
    run.norms.push_back(engine->step(TrainConfig{}, 1e-3, 1.0f));
  }
  engine->sync_to_host();
  run.weights = model.weights();
  run.exp_avg_sq = optimizer.exp_avg_sq;
  run.describe = engine->describe();
  return run;
}

void expect_same_steps(const EngineRun& a, const EngineRun& b) {
  EXPECT_EQ(a.norms, b.norms);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.exp_avg_sq, b.exp_avg_sq);
}

// The engine's gradients go through an NCCL reduce-scatter of one rank: the steps are the
// engine's alone, bit for bit (fp32, deterministic backward): the reduce-scatter of one
// rank and the norm summed over one rank change no bit.
TEST(CudaDist, EngineThroughNcclEqualsEngineAlone) {
  if (gpu_count() < 1) GTEST_SKIP() << "no CUDA device";
  const std::unique_ptr<dist::Communicator> comm = nccl_alone();
  expect_same_steps(three_steps(nullptr, 0, 1, 3), three_steps(comm.get(), 0, 1, 3));
}

// Gradient buckets through NCCL: at world size 1 each bucket is an in-place ncclReduce on
// the communicator's stream, after the backward work queued before it (an event) and
// before the step's work (the default stream waits for it). With --accumulate 2 (only the
// last micro-batch's backward reduces; the first one's gradients are not final) the steps
// equal those of one reduce-scatter after the backward, bit for bit.
TEST(CudaDist, BucketsDuringTheBackwardEqualOneReduceScatter) {
  if (gpu_count() < 1) GTEST_SKIP() << "no CUDA device";
  const std::unique_ptr<dist::Communicator> comm = nccl_alone();
  const EngineRun after = three_steps(comm.get(), 0, 2, 7), buckets = three_steps(comm.get(), 1000, 2, 7);
  EXPECT_NE(after.describe.find("reduce-scattered after the backward"), std::string::npos) << after.describe;
  EXPECT_NE(buckets.describe.find("in buckets"), std::string::npos) << buckets.describe;
  expect_same_steps(after, buckets);
}

// The GPU model reports gradients final only once the work that finishes them is queued:
// a copy taken at each report (it waits for that work) equals the end of the backward.
TEST(CudaDist, TheGpuModelReportsOnlyFinalGradients) {
  if (gpu_count() < 1) GTEST_SKIP() << "no CUDA device";
  const ModelConfig config = engine_test_config();
  Model host(config);
  host.init(9);
  cuda::CudaModel gpu(host, cuda::DType::f32, true, true);
  const std::vector<uint8_t> tokens = random_tokens(2 * config.ctx, 10);
  std::vector<int64_t> froms;
  std::vector<std::vector<float>> seen;  // the final suffix at each report
  const GradientsReady hook = [&](int64_t from) {
    std::vector<float> grads;
    gpu.download_grads(grads);
    froms.push_back(from);
    seen.emplace_back(grads.begin() + from, grads.end());
  };
  gpu.zero_grads();
  gpu.forward_backward(tokens.data(), 2, DropoutContext{}, 1.0f, &hook);
  std::vector<float> final_grads;
  gpu.download_grads(final_grads);
  const ParamTable& table = host.params();
  EXPECT_EQ(froms, (std::vector<int64_t>{table.find("ln_f.weight").offset, table.find("blocks.1.ln1.weight").offset,
                                         table.find("blocks.0.ln1.weight").offset, 0}));
  for (size_t i = 0; i < froms.size(); ++i)
    EXPECT_EQ(seen[i], std::vector<float>(final_grads.begin() + froms[i], final_grads.end())) << "report " << i;
}

// Each of two GPU ranks keeps the moments of its shard only (half the memory) and steps
// them exactly as one GPU steps that range (no clipping: the norms are partial, for the
// stand-in ranks' collectives leave their input, so the gradients are one rank's).
TEST(CudaDist, EachRankKeepsItsShardOfTheMoments) {
  if (gpu_count() < 1) GTEST_SKIP() << "no CUDA device";
  const ModelConfig config = engine_test_config();
  const int B = 2;
  const std::vector<uint8_t> tokens = random_tokens(B * config.ctx, 4);
  TrainConfig train;
  train.clip = 0;
  auto one_step = [&](dist::Communicator* comm, Model& model, OptimizerState& optimizer) {
    const std::unique_ptr<Engine> engine = make_engine({"cuda", "fp32", true, true, comm}, model, &optimizer);
    engine->zero_grads();
    engine->forward_backward(tokens.data(), B, DropoutContext{}, 1.0f);
    engine->step(train, 1e-3, 1.0f);
    engine->sync_to_host();
    return engine->optimizer_bytes();
  };
  Model whole(config);
  whole.init(6);
  const int64_t n = whole.params().total();
  OptimizerState all(n);
  const int64_t whole_bytes = one_step(nullptr, whole, all);
  for (int rank : {0, 1}) {
    const std::unique_ptr<dist::Communicator> comm = dist::make_local_stand_in(rank, 2, true);
    Model model(config);
    model.init(6);
    const dist::ShardRange s = dist::shard_range(n, 2, rank);
    OptimizerState shard(s.size(), s.begin);
    EXPECT_NEAR(static_cast<double>(one_step(comm.get(), model, shard)) / whole_bytes, 0.5, 64.0 / n) << "rank " << rank;
    EXPECT_EQ(shard.exp_avg, std::vector<float>(all.exp_avg.begin() + s.begin, all.exp_avg.begin() + s.end));
    EXPECT_EQ(shard.exp_avg_sq, std::vector<float>(all.exp_avg_sq.begin() + s.begin, all.exp_avg_sq.begin() + s.end));
    EXPECT_EQ(std::vector<float>(model.weights().begin() + s.begin, model.weights().begin() + s.end),
              std::vector<float>(whole.weights().begin() + s.begin, whole.weights().begin() + s.end));
  }
}

// Two ranks as torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
// the TCP rendezvous hands out the NCCL id; the run matches one GPU of the same global
// batch to fp32 rounding (other reduction orders).
TEST(CudaDist, TwoGpusMatchOneOfTheSameGlobalBatch) {
  if (gpu_count() < 2) GTEST_SKIP() << "needs 2 GPUs";
  TempDir dir("cuda-dist");
  std::string text;
  for (int i = 0; text.size() < 50000; ++i) text += static_cast<char>('a' + uniform_int(13, i, 26));
  std::ofstream(dir / "data.txt") << text;
  const std::string args = " train --device cuda --precision fp32 --deterministic --layers 2 --width 64 --heads 2 "
                           "--ctx 128 --stride 16 --steps 5 --eval-batches 2 --lr 3e-3 --warmup 2 --data " +
                           dir / "data.txt";
  const std::string spt = std::string(SPT_BINARY);
  ASSERT_EQ(std::system((spt + args + " --batch 4 --out " + dir / "one" + " >/dev/null 2>&1").c_str()), 0);
  const std::string port = std::to_string(29500 + ::getpid() % 1000);
  std::string ranks = "cd " + dir.path() + " && ";
  for (int r = 0; r < 2; ++r)
    ranks += "RANK=" + std::to_string(r) + " WORLD_SIZE=2 LOCAL_RANK=" + std::to_string(r) +
             " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " timeout 120 " + spt + args + " --batch 2 --out " +
             dir / "two" + " >rank" + std::to_string(r) + ".txt 2>&1 & ";
  ASSERT_EQ(std::system((ranks + "wait %1 && wait %2").c_str()), 0) << slurp(dir / "rank0.txt") << slurp(dir / "rank1.txt");
  const std::vector<double> a = losses_of(dir / "one"), b = losses_of(dir / "two");
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * a[i]) << "step " << i + 1;
}

#else
TEST(CudaDist, NeedsNccl) { GTEST_SKIP() << "built without CUDA or NCCL"; }
#endif

}  // namespace
}  // namespace spt
