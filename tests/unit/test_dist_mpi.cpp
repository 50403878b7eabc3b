// Data-parallel training end to end on the CPU: `mpirun -np 2 spt train` against one
// process with the same global batch, resuming across rank counts, the sharded optimizer
// state through a checkpoint, gradient buckets against one reduce-scatter, and a rank
// killed mid-run. The tiny model (30k parameters) fits in one default bucket of 25 MiB,
// which goes as one reduce-scatter at the end of the backward; --bucket-mib 0.001 cuts it
// into a bucket per report of the backward. Skipped where mpirun or MPI is
// missing; launcher errors that need no second process run everywhere.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "model/model.h"
#include "metrics_test_util.h"
#include "temp_dir.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

namespace spt {
namespace {

namespace fs = std::filesystem;
using testing_support::CliResult;
using testing_support::losses_of;
using testing_support::slurp;
using testing_support::TempDir;

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// mpirun as the tests need it: any user (root in containers), more ranks than cores.
std::string mpirun(int ranks) {
  return "mpirun --oversubscribe" + std::string(::geteuid() == 0 ? " --allow-run-as-root" : "") + " -np " +
         std::to_string(ranks) + " ";
}

struct Trained {
  std::vector<float> weights, exp_avg, exp_avg_sq, ema;
};

Trained load_run(const std::string& run) {
  const CheckpointInfo info = read_checkpoint_info(run + "/checkpoint");
  Model model(info.model);
  OptimizerState optimizer(model.params().total());
  load_checkpoint(run + "/checkpoint", model, &optimizer);
  return {model.weights(), optimizer.exp_avg, optimizer.exp_avg_sq, optimizer.ema};
}

// Float reduction order differs between one process and two (a batch of 4 windows against
// two of 2, then a sum over the ranks): the runs agree to rounding, amplified by a few steps.
constexpr double kLossTolerance = 1e-8;  // relative, on the mean loss
constexpr float kWeightTolerance = 1e-5f;  // absolute, weights of order 0.02 to 1

void expect_close(const Trained& a, const Trained& b) {
  ASSERT_EQ(a.weights.size(), b.weights.size());
  float worst = 0;
  for (size_t i = 0; i < a.weights.size(); ++i) worst = std::max(worst, std::abs(a.weights[i] - b.weights[i]));
  EXPECT_LT(worst, kWeightTolerance);
  ASSERT_EQ(a.ema.size(), b.ema.size());
  worst = 0;
  for (size_t i = 0; i < a.ema.size(); ++i) worst = std::max(worst, std::abs(a.ema[i] - b.ema[i]));
  EXPECT_LT(worst, kWeightTolerance);
}

// The optimizer memory of the trainer's memory line ("..., optimizer 0.12 MiB ..."), -1 if absent.
double optimizer_mib(const std::string& log) {
  const size_t line = log.find("memory: ");
  const size_t at = line == std::string::npos ? line : log.find("optimizer ", line);
  return at == std::string::npos ? -1 : std::stod(log.substr(at + 10));
}

// Two runs that must agree bit for bit: weights, both moments, per-step losses.
void expect_identical(const std::string& run_a, const std::string& run_b) {
  const Trained a = load_run(run_a), b = load_run(run_b);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.exp_avg, b.exp_avg);
  EXPECT_EQ(a.exp_avg_sq, b.exp_avg_sq);
  EXPECT_EQ(a.ema, b.ema);
  EXPECT_EQ(losses_of(run_a), losses_of(run_b));
}

class DistMpi : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text;
    for (int i = 0; text.size() < 20000; ++i) text += static_cast<char>('a' + uniform_int(11, i, 26));
    std::ofstream(dir_ / "data.txt") << text;
  }
  CliResult spt(const std::string& args, const std::string& launcher = "") const {
    const std::string binary = std::string(SPT_BINARY);
    const std::string out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    const std::string command = "cd '" + dir_.path() + "' && export OMP_NUM_THREADS=1 && timeout 120 " + launcher +
                                binary + " " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
  }
  std::string tiny(const std::string& out, int batch, int steps) const {
    return "train --layers 1 --width 32 --heads 2 --ctx 64 --stride 8 --eval-batches 3 --log-every 1000 --lr 3e-3 "
           "--warmup 2 --batch " + std::to_string(batch) + " --steps " + std::to_string(steps) + " --data " +
           dir_ / "data.txt" + " --out " + dir_ / out;
  }
  void SkipWithoutMpi() {
#ifndef SPT_HAVE_MPI
    GTEST_SKIP() << "built without MPI";
#endif
    if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed (apt-get install openmpi-bin)";
  }
  TempDir dir_{"dist-mpi"};
};

TEST_F(DistMpi, TwoRanksMatchOneProcessOfTheSameGlobalBatch) {
  SkipWithoutMpi();
  if (IsSkipped()) return;
  const CliResult one = spt(tiny("one", 4, 6) + " --ema 0.9");
  ASSERT_EQ(one.code, 0) << one.err;
  const CliResult two = spt(tiny("two", 2, 6) + " --ema 0.9", mpirun(2));
  ASSERT_EQ(two.code, 0) << two.out << two.err;
  EXPECT_NE(two.out.find("2 ranks x 1 x 2 windows"), std::string::npos) << two.out;
  EXPECT_NE(two.out.find("data-parallel over MPI, 2 ranks"), std::string::npos) << two.out;
  // Each rank keeps the moments of its shard only: half of one process's, to the 64-float
  // alignment of the shards and the line's rounding.
  EXPECT_NE(two.err.find("(shard 1/2)"), std::string::npos) << two.err;
  const double whole = optimizer_mib(one.err), shard = optimizer_mib(two.err);
  ASSERT_GT(whole, 0.1) << one.err;
  EXPECT_NEAR(shard, whole / 2, 0.01) << one.err << two.err;
  const std::vector<double> a = losses_of(dir_ / "one"), b = losses_of(dir_ / "two");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], kLossTolerance * a[i]) << "step " << i + 1;
  expect_close(load_run(dir_ / "one"), load_run(dir_ / "two"));
  // Rank 0 alone writes: one metrics row per step, one checkpoint.
  const std::string metrics = slurp(dir_ / "two/metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 7);
}

// The optimizer's shards are gathered into the checkpoint and handed out again on resume:
// a stopped and resumed 2-rank run is the uninterrupted one, bit for bit (with small
// gradient buckets, which the checkpoint's config keeps).
TEST_F(DistMpi, ShardedOptimizerStateRestoresExactly) {
  SkipWithoutMpi();
  if (IsSkipped()) return;
  const std::string average = " --ema 0.9 --eval-every 2 --bucket-mib 0.001";
  ASSERT_EQ(spt(tiny("whole", 2, 6) + average, mpirun(2)).code, 0);
  ASSERT_EQ(spt(tiny("split", 2, 6) + average + " --stop-at 3", mpirun(2)).code, 0);
  const CliResult resumed = spt("train --resume --log-every 1000 --out " + dir_ / "split", mpirun(2));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  expect_identical(dir_ / "whole", dir_ / "split");
  const Trained a = load_run(dir_ / "whole");
  EXPECT_EQ(a.ema.size(), a.weights.size());
  // The validation passes before and after the stop pick the same best step.
  const CheckpointInfo whole = read_checkpoint_info(dir_ / "whole/checkpoint");
  const CheckpointInfo split = read_checkpoint_info(dir_ / "split/checkpoint");
  EXPECT_EQ(whole.state.best_step, split.state.best_step);
  EXPECT_EQ(whole.state.best_valid_bits, split.state.best_valid_bits);
  EXPECT_TRUE(fs::exists(dir_ / "split/best/model_ema.safetensors"));
}

// The data order depends on the seed and the global step: a run resumes on another rank
// count with --batch keeping ranks x batch, and continues as if it had not moved (with the
// gradients reduce-scattered after the backward, --bucket-mib 0, as before buckets).
TEST_F(DistMpi, ResumesOnAnotherRankCount) {
  SkipWithoutMpi();
  if (IsSkipped()) return;
  ASSERT_EQ(spt(tiny("reference", 4, 6)).code, 0);
  ASSERT_EQ(spt(tiny("down", 2, 6) + " --stop-at 3 --bucket-mib 0", mpirun(2)).code, 0);
  const CliResult down = spt("train --resume --batch 4 --log-every 1000 --out " + dir_ / "down");
  ASSERT_EQ(down.code, 0) << down.err;
  ASSERT_EQ(spt(tiny("up", 4, 6) + " --stop-at 3 --bucket-mib 0").code, 0);
  const CliResult up = spt("train --resume --batch 2 --log-every 1000 --out " + dir_ / "up", mpirun(2));
  ASSERT_EQ(up.code, 0) << up.err;
  const Trained reference = load_run(dir_ / "reference");
  expect_close(reference, load_run(dir_ / "down"));
  expect_close(reference, load_run(dir_ / "up"));
  const std::vector<double> a = losses_of(dir_ / "reference"), b = losses_of(dir_ / "down"),
                            c = losses_of(dir_ / "up");
  ASSERT_EQ(b.size(), a.size());
  ASSERT_EQ(c.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], kLossTolerance * a[i]) << "step " << i + 1;
    EXPECT_NEAR(a[i], c[i], kLossTolerance * a[i]) << "step " << i + 1;
  }
}

// Three ranks cut the parameters into uneven shards (the last one shorter), and small
// gradient buckets across their boundaries: a stopped and resumed run is the uninterrupted
// one bit for bit and agrees with one process.
TEST_F(DistMpi, UnevenShardsOfThreeRanksResumeExactly) {
  SkipWithoutMpi();
  if (IsSkipped()) return;
  ASSERT_EQ(spt(tiny("one", 3, 5)).code, 0);
  ASSERT_EQ(spt(tiny("whole", 1, 5) + " --bucket-mib 0.001", mpirun(3)).code, 0);
  ASSERT_EQ(spt(tiny("split", 1, 5) + " --bucket-mib 0.001 --stop-at 2", mpirun(3)).code, 0);
  const CliResult resumed = spt("train --resume --log-every 1000 --out " + dir_ / "split", mpirun(3));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  expect_identical(dir_ / "whole", dir_ / "split");
  expect_close(load_run(dir_ / "one"), load_run(dir_ / "whole"));
}

// Gradients reduced in buckets during the backward of the last micro-batch (--accumulate
// 2; three buckets a step: head and ln_f, the block across the shard boundary, the
// embeddings) leave each rank the sums one reduce-scatter after the backward leaves: on 2
// ranks a + b in either collective, so the runs are the same bit for bit.
TEST_F(DistMpi, ManySmallBucketsEqualOneReduceScatter) {
  SkipWithoutMpi();
  if (IsSkipped()) return;
  const std::string args = " --accumulate 2 --dropout 0.1";
  const CliResult buckets = spt(tiny("buckets", 2, 4) + args + " --bucket-mib 0.001", mpirun(2));
  ASSERT_EQ(buckets.code, 0) << buckets.err;
  EXPECT_NE(buckets.out.find("gradients reduced in buckets of"), std::string::npos) << buckets.out;
  const CliResult after = spt(tiny("after", 2, 4) + args + " --bucket-mib 0", mpirun(2));
  ASSERT_EQ(after.code, 0) << after.err;
  EXPECT_NE(after.out.find("gradients reduce-scattered after the backward"), std::string::npos) << after.out;
  expect_identical(dir_ / "buckets", dir_ / "after");
}

// The collectives the shards need, on 2 and 3 real ranks (tests/mpi/mpi_check.cpp):
// reduce_scatter against a reference sum with short and empty last shards, gradient
// buckets against reduce_scatter, host scatter and gather, and a sharded optimizer state
// gathered into a checkpoint.
TEST_F(DistMpi, ShardCollectivesOnRealRanks) {
  SkipWithoutMpi();
  if (IsSkipped()) return;
#ifdef SPT_MPI_CHECK
  for (int ranks : {2, 3}) {
    const std::string run = dir_ / ("check" + std::to_string(ranks));
    fs::create_directories(run);
    const std::string command = "export OMP_NUM_THREADS=1 && timeout 120 " + mpirun(ranks) + SPT_MPI_CHECK + " '" +
                                run + "' >'" + run + "/out.txt' 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << slurp(run + "/out.txt");
    EXPECT_NE(slurp(run + "/out.txt").find("ok"), std::string::npos) << slurp(run + "/out.txt");
  }
#endif
}

// The pid of the rank-`rank` process whose command line names `marker`.
pid_t find_rank(const std::string& marker, int rank) {
  const std::string wanted = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (slurp(entry.path().string() + "/cmdline").find(marker) == std::string::npos) continue;
    std::string environ = slurp(entry.path().string() + "/environ");
    for (char& c : environ)
      if (c == '\0') c = '\n';
    if (("\n" + environ).find("\n" + wanted + "\n") != std::string::npos) return std::stoi(name);
  }
  return -1;
}

TEST_F(DistMpi, AKilledRankEndsTheJobQuickly) {
  SkipWithoutMpi();
  if (IsSkipped()) return;
  const std::string out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
  const std::string command = "export OMP_NUM_THREADS=1 && exec " + mpirun(2) + std::string(SPT_BINARY) + " " +
                              tiny("killed", 2, 1000000) + " >'" + out + "' 2>'" + err + "'";
  const pid_t job = ::fork();
  ASSERT_GE(job, 0);
  if (job == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto start = std::chrono::steady_clock::now();
  pid_t victim = -1;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
    if (slurp(dir_ / "killed/metrics.jsonl").size() > 0 && (victim = find_rank(dir_ / "killed", 1)) > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GT(victim, 0) << "rank 1 never started training: " << slurp(err);
  ::kill(victim, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  int status = 0;
  while (::waitpid(job, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() - killed > std::chrono::seconds(30)) {
      ::kill(job, SIGKILL);
      ::waitpid(job, &status, 0);
      FAIL() << "the job still ran 30 s after rank 1 was killed";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(slurp(err).find("rank 1"), std::string::npos) << slurp(err);
  EXPECT_EQ(find_rank(dir_ / "killed", 0), -1) << "rank 0 outlived the job";
  std::printf("after killing rank 1, the job ended in %.1f s with:\n%s", std::chrono::duration<double>(
                  std::chrono::steady_clock::now() - killed).count(), slurp(err).c_str());
}

TEST_F(DistMpi, CpuRanksNeedMpirun) {
  const CliResult r = spt(tiny("torchrun", 2, 2), "env RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 ");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--device cpu trains data-parallel over MPI only"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mpirun -np 2"), std::string::npos) << r.err;
}

TEST_F(DistMpi, BuildsWithoutATransportSaySo) {
#ifndef SPT_HAVE_MPI
  const CliResult r = spt(tiny("nompi", 2, 2), "env OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 ");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("built without MPI"), std::string::npos) << r.err;
#endif
#ifndef SPT_HAVE_NCCL
  const CliResult g = spt(tiny("nonccl", 2, 2) + " --device cuda", "env RANK=0 WORLD_SIZE=2 ");
  EXPECT_EQ(g.code, 1);
  EXPECT_NE(g.err.find("without NCCL"), std::string::npos) << g.err;
#else
  GTEST_SKIP() << "built with NCCL";
#endif
}

}  // namespace
}  // namespace spt
