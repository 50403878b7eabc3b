// The sharding collectives on real ranks, run by tests/unit/test_dist_mpi.cpp as
// `mpirun -np N spt_mpi_check DIR`: reduce_scatter against the sum computed on each rank,
// for sizes whose last shards are short or empty; gradient buckets reduced during a
// simulated backward against reduce_scatter; scatter and gather of host shards; and
// an optimizer state handed out in shards (share_weights) and gathered into a checkpoint
// (save_gathered_checkpoint) that loads back bit for bit. Prints "ok" on rank 0 and exits
// 0, or names the first difference and exits 1.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "dist/gradient_reducer.h"
#include "dist/world.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/optimizer.h"

namespace spt {
namespace {

// Small integers: every sum below is exact in fp32, whatever order the ranks add in.
float value_of(int rank, int64_t i) { return static_cast<float>((rank + 1) * (i % 97) - 40); }

void check_reduce_scatter(dist::Communicator& comm, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));  // (n)
  for (int64_t i = 0; i < n; ++i) x[i] = value_of(comm.rank(), i);
  comm.reduce_scatter(x.data(), n);
  const dist::ShardRange mine = dist::shard_range(n, comm.world(), comm.rank());
  for (int64_t i = mine.begin; i < mine.end; ++i) {
    float expected = 0;
    for (int r = 0; r < comm.world(); ++r) expected += value_of(r, i);
    SPT_CHECK(x[i] == expected, "reduce_scatter of ", n, " values on rank ", comm.rank(), ": element ", i, " is ",
              x[i], ", not ", expected);
  }
}

// A backward that reports its final gradients in uneven steps (jumps over several buckets
// included), the buckets reduced as they come and the rest at the step, against one
// reduce_scatter of the same values: each rank's shard must hold the same sums. With exact
// values (small integers) and with any values on 2 ranks (a + b does not depend on the
// order) bit for bit; with rounded values on 3 ranks to rounding only, for MPI_Ireduce and
// MPI_Reduce_scatter may add the ranks in other orders.
void check_buckets(dist::Communicator& comm, int64_t n, int64_t bucket, bool exact) {
  std::vector<float> x(static_cast<size_t>(n));  // (n)
  for (int64_t i = 0; i < n; ++i)
    x[i] = exact ? value_of(comm.rank(), i) : 2 * uniform01(rng_key(comm.rank(), 17), i) - 1;
  std::vector<float> reference = x;  // (n)
  comm.reduce_scatter(reference.data(), n);
  dist::GradientReducer reducer(comm, n, bucket);
  reducer.arm(x.data());
  const auto* hook = reducer.take_hook();
  SPT_CHECK(hook != nullptr, "an armed reducer of buckets of ", bucket, " gave no hook");
  const bool says_done = bucket % 2 == 0;  // else the step takes the rest unannounced
  for (int64_t from = n, step = 1; from > 0; ++step) {
    from = std::max<int64_t>(0, from - 97 * (step % 5 + 1));
    if (from > 0 || says_done) (*hook)(from);
  }
  reducer.finish(x.data());
  const dist::ShardRange mine = dist::shard_range(n, comm.world(), comm.rank());
  const bool bitwise = exact || comm.world() == 2;
  for (int64_t i = mine.begin; i < mine.end; ++i)
    SPT_CHECK(bitwise ? x[i] == reference[i] : std::abs(x[i] - reference[i]) <= 1e-6f, "buckets of ", bucket,
              " over ", n, " values on rank ", comm.rank(), ": element ", i, " is ", x[i], ", reduce_scatter gives ",
              reference[i]);
}

void check_scatter_gather(dist::Communicator& comm, int64_t n) {
  const bool root = comm.rank() == 0;
  std::vector<float> whole(root ? n : 0), back(root ? n : 0);  // (n) on rank 0
  for (int64_t i = 0; root && i < n; ++i) whole[i] = value_of(7, i);
  const dist::ShardRange mine = dist::shard_range(n, comm.world(), comm.rank());
  std::vector<float> shard(static_cast<size_t>(mine.size()));  // (shard)
  dist::scatter_shards_host(comm, whole.data(), shard.data(), n, 0);
  for (int64_t i = mine.begin; i < mine.end; ++i)
    SPT_CHECK(shard[i - mine.begin] == value_of(7, i), "scatter of ", n, " values: rank ", comm.rank(),
              " got element ", i, " wrong");
  dist::gather_shards_host(comm, shard.data(), back.data(), n, 0);
  SPT_CHECK(back == whole, "gather of ", n, " values: rank 0 got another buffer back");
}

// A whole optimizer state on rank 0, shared out in shards and gathered into a checkpoint:
// the checkpoint holds exactly rank 0's state.
void check_checkpoint_round_trip(dist::Communicator& comm, const std::string& dir) {
  ModelConfig config;
  config.layers = 1;
  config.width = 32;
  config.heads = 2;
  config.ctx = 64;
  config.stride = 8;
  config.pos_sizes = {8, 8};
  Model model(config);
  model.init(3);
  const int64_t n = model.params().total();
  OptimizerState optimizer(comm.rank() == 0 ? n : 0);
  for (int64_t i = 0; i < static_cast<int64_t>(optimizer.exp_avg.size()); ++i) {
    optimizer.exp_avg[i] = 1e-3f * value_of(1, i);
    optimizer.exp_avg_sq[i] = 1e-6f * static_cast<float>(i % 13 + 1);
  }
  optimizer.step = 5;
  const OptimizerState original = optimizer;
  share_weights(comm, model, optimizer);
  const dist::ShardRange mine = dist::shard_range(n, comm.world(), comm.rank());
  SPT_CHECK(optimizer.moments_begin == mine.begin && optimizer.moments_end() == mine.end, "rank ", comm.rank(),
            " keeps the moments of [", optimizer.moments_begin, ", ", optimizer.moments_end(), "), not its shard [",
            mine.begin, ", ", mine.end, ")");
  TrainState state;
  state.step = 5;
  save_gathered_checkpoint(comm, dir, model, optimizer, TrainConfig{}, state);
  comm.barrier();
  if (comm.rank() != 0) return;
  Model loaded_model(config);
  OptimizerState loaded;
  load_checkpoint(dir, loaded_model, &loaded);
  SPT_CHECK(loaded.exp_avg == original.exp_avg && loaded.exp_avg_sq == original.exp_avg_sq && loaded.step == 5,
            "the gathered checkpoint differs from rank 0's optimizer state");
}

int run(const std::string& dir) {
  dist::World world = dist::join_world(dist::launch_from_environment(), "cpu");
  dist::Communicator& comm = *world.comm;
  for (int64_t n : {0, 1, 63, 64, 65, 129, 200, 1000, 12345}) {
    check_reduce_scatter(comm, n);
    check_scatter_gather(comm, n);
    for (int64_t bucket : {1, 64, 1000, 1 << 30})
      for (bool exact : {true, false}) check_buckets(comm, n, bucket, exact);
  }
  check_checkpoint_round_trip(comm, dir + "/checkpoint");
  world.finish();
  if (comm.rank() == 0) std::printf("ok\n");
  return 0;
}

}  // namespace
}  // namespace spt

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mpirun -np N spt_mpi_check DIR\n");
    return 2;
  }
  try {
    return spt::run(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spt_mpi_check: error: %s\n", e.what());
    return 1;
  }
}
