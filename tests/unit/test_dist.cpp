// Data parallelism without a second process: launch variables of torchrun, mpirun and
// srun, parameter shards, the TCP rendezvous (and its timeouts), the sharded AdamW step and
// what one rank of a sharded optimizer keeps.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/launch.h"
#include "dist/rendezvous.h"
#include "model/model.h"
#include "test_support.h"
#include "train/engine.h"
#include "train/optimizer.h"

namespace spt {
namespace {

using testing_support::error_of;
using Env = std::map<std::string, std::string>;

dist::LaunchInfo parse(const Env& env) {
  return dist::parse_launch([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Launch, NoLauncherIsOneProcess) {
  const dist::LaunchInfo info = parse({});
  EXPECT_EQ(info.launcher, "none");
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.world, 1);
  EXPECT_FALSE(info.distributed());
  EXPECT_EQ(info.rendezvous_timeout, dist::kDefaultRendezvousTimeout);
  EXPECT_EQ(info.collective_timeout, dist::kDefaultCollectiveTimeout);
}

TEST(Launch, Torchrun) {
  const dist::LaunchInfo info = parse({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                       {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29400"}});
  EXPECT_EQ(info.launcher, "torchrun");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world, 8);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.master_addr, "node7");
  EXPECT_EQ(info.master_port, 29400);
  EXPECT_TRUE(info.distributed());
}

TEST(Launch, Mpirun) {
  const dist::LaunchInfo info =
      parse({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "3"}});
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world, 4);
  EXPECT_EQ(info.local_rank, 3);
  EXPECT_EQ(info.master_addr, "");
  EXPECT_EQ(info.master_port, dist::kDefaultMasterPort);
}

TEST(Launch, Srun) {
  const dist::LaunchInfo info = parse({{"SLURM_PROCID", "9"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"}});
  EXPECT_EQ(info.launcher, "srun");
  EXPECT_EQ(info.rank, 9);
  EXPECT_EQ(info.world, 16);
  EXPECT_EQ(info.local_rank, 1);
}

TEST(Launch, TorchrunWinsOverTheAllocationItRunsIn) {
  const dist::LaunchInfo info = parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"},
                                       {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"},
                                       {"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "1"}});
  EXPECT_EQ(info.launcher, "torchrun");
  EXPECT_EQ(info.rank, 1);
  const dist::LaunchInfo mpi = parse({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                                      {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(mpi.launcher, "mpirun");
  EXPECT_EQ(mpi.world, 2);
}

TEST(Launch, BadValuesNameTheVariable) {
  EXPECT_NE(error_of([] { parse({{"RANK", "2"}, {"WORLD_SIZE", "2"}}); }).find("RANK='2'"), std::string::npos);
  EXPECT_NE(error_of([] { parse({{"RANK", "0"}, {"WORLD_SIZE", "two"}}); }).find("WORLD_SIZE='two'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse({{"RANK", "0"}}); }).find("not WORLD_SIZE"), std::string::npos);
  EXPECT_NE(error_of([] { parse({{"MASTER_PORT", "70000"}}); }).find("MASTER_PORT='70000'"), std::string::npos);
  EXPECT_NE(error_of([] { parse({{"SPT_RENDEZVOUS_TIMEOUT", "-1"}}); }).find("SPT_RENDEZVOUS_TIMEOUT"),
            std::string::npos);
  const dist::LaunchInfo info = parse({{"SPT_RENDEZVOUS_TIMEOUT", "2.5"}, {"SPT_COLLECTIVE_TIMEOUT", "30"}});
  EXPECT_EQ(info.rendezvous_timeout, 2.5);
  EXPECT_EQ(info.collective_timeout, 30);
}

TEST(Shards, TileTheParametersAligned) {
  for (int64_t n : {0, 1, 63, 64, 1000, 29920, 123457})
    for (int world : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int r = 0; r < world; ++r) {
        const dist::ShardRange s = dist::shard_range(n, world, r);
        EXPECT_EQ(s.begin, next) << n << " " << world << " " << r;
        EXPECT_LE(s.begin, s.end);
        if (s.size() > 0) {
          EXPECT_EQ(s.begin % 64, 0);
        }
        next = s.end;
      }
      EXPECT_EQ(next, n);
    }
}

TEST(Communicator, OneProcessReturnsItsInput) {
  const auto comm = dist::make_single_communicator();
  std::vector<float> x = {1, 2, 3};
  comm->all_reduce_sum(x.data(), 3);
  comm->all_gather(x.data(), 3);
  EXPECT_EQ(x, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(dist::all_sum(*comm, 4.5), 4.5);
  std::string text = "id";
  dist::broadcast_string(*comm, text, 0);
  EXPECT_EQ(text, "id");
}

// A port nobody listens on: bound, then closed, by the kernel's choice.
int free_port() {
  for (int port = 35000 + ::getpid() % 20000;; ++port) {
    dist::LaunchInfo probe;
    probe.world = 1;
    probe.master_port = port;
    try {
      dist::TcpGroup group(probe);
      return port;
    } catch (const Error&) {
    }
  }
}

dist::LaunchInfo rank_of(int rank, int world, int port, double timeout) {
  dist::LaunchInfo info;
  info.launcher = "torchrun";
  info.rank = rank;
  info.world = world;
  info.master_addr = "127.0.0.1";
  info.master_port = port;
  info.rendezvous_timeout = timeout;
  return info;
}

TEST(Rendezvous, HandsRankZerosBytesToEveryRank) {
  const int port = free_port();
  std::vector<std::string> got(3);
  std::vector<std::string> errors(3);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 3; ++r)
    ranks.emplace_back([&, r] {
      errors[r] = error_of([&] {
        dist::TcpGroup group(rank_of(r, 3, port, 20));
        got[r] = group.broadcast(r == 0 ? std::string("nccl-id\0bytes", 13) : std::string());
        group.finish();
      });
    });
  for (std::thread& t : ranks) t.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(errors[r], "") << r;
    EXPECT_EQ(got[r], std::string("nccl-id\0bytes", 13)) << r;
  }
}

TEST(Rendezvous, RankZeroTimesOutNamingTheMissingRanks) {
  const auto start = std::chrono::steady_clock::now();
  const std::string error = error_of([] { dist::TcpGroup group(rank_of(0, 3, free_port(), 0.5)); });
  EXPECT_NE(error.find("rendezvous timed out after 0.5 s: ranks 1, 2 of 3 never connected"), std::string::npos)
      << error;
  EXPECT_NE(error.find("SPT_RENDEZVOUS_TIMEOUT"), std::string::npos) << error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(Rendezvous, OtherRanksTimeOutWhenRankZeroNeverComes) {
  const int port = free_port();
  const auto start = std::chrono::steady_clock::now();
  const std::string error = error_of([&] { dist::TcpGroup group(rank_of(1, 2, port, 0.5)); });
  EXPECT_NE(error.find("rank 1 could not reach rank 0 at 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << error;
  EXPECT_NE(error.find("SPT_RENDEZVOUS_TIMEOUT"), std::string::npos) << error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(error_of([] { dist::TcpGroup group(rank_of(1, 2, 1, 0.1)); }).find("rendezvous timed out"),
            std::string::npos);
  dist::LaunchInfo no_address = rank_of(1, 2, port, 0.5);
  no_address.master_addr.clear();
  EXPECT_NE(error_of([&] { dist::TcpGroup group(no_address); }).find("MASTER_ADDR is not set"), std::string::npos);
}

TEST(Rendezvous, RankZeroWaitsForTheIdUntilItsTimeout) {
  const int port = free_port();
  std::string late_error;
  std::thread zero([&] {
    late_error = error_of([&] {
      dist::TcpGroup group(rank_of(0, 2, port, 10));
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // never broadcasts in time
    });
  });
  const std::string error = error_of([&] {
    dist::TcpGroup group(rank_of(1, 2, port, 1));
    group.broadcast("");
  });
  zero.join();
  EXPECT_NE(error.find("got no id from rank 0 within 1 s"), std::string::npos) << error;
  EXPECT_EQ(late_error, "");
}

// Runs `rank` of a 2-rank TcpGroup in a child process: joins, takes the id, watches, then
// `then()`; the child exits 0 when then() returns.
template <typename Then>
pid_t child_rank(int rank, int port, Then then) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  try {
    dist::TcpGroup group(rank_of(rank, 2, port, 10));
    group.broadcast("id");
    group.watch();
    then(group);
  } catch (...) {
    ::_exit(3);
  }
  ::_exit(0);
}

// Waits at most `seconds` for `pid`; its exit status, or -1 (then it is killed).
int exit_within(pid_t pid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The liveness watch of the rendezvous: a rank that dies without finishing ends its peer
// (status 1, within seconds); one that finished does not.
TEST(Rendezvous, ADeadRankEndsItsPeerAndAFinishedOneDoesNot) {
  for (const bool finish : {false, true}) {
    const int port = free_port();
    const pid_t zero = child_rank(0, port, [&](dist::TcpGroup& group) {
      std::this_thread::sleep_for(std::chrono::seconds(finish ? 1 : 20));
      group.finish();
    });
    const pid_t one = child_rank(1, port, [&](dist::TcpGroup& group) {
      if (finish) group.finish();
      ::_exit(finish ? 0 : 9);  // no finish: as if killed
    });
    EXPECT_EQ(exit_within(one, 15), finish ? 0 : 9);
    EXPECT_EQ(exit_within(zero, 10), finish ? 0 : 1) << (finish ? "finished" : "died");
  }
}

ModelConfig tiny_model() {
  ModelConfig c;
  c.layers = 1;
  c.width = 32;
  c.heads = 2;
  c.ctx = 64;
  c.stride = 8;
  c.pos_sizes = {8, 8};
  return c;
}

// Sharded AdamW: the ranks' steps over their shards, put together, are the whole step.
TEST(ShardedOptimizer, ShardsTogetherEqualTheWholeStep) {
  Model whole(tiny_model());
  whole.init(7);
  const int64_t n = whole.params().total();
  for (int64_t i = 0; i < n; ++i) whole.grads()[i] = 0.001f * static_cast<float>((i * 37) % 101 - 50);
  Model sharded(tiny_model());
  sharded.weights() = whole.weights();
  sharded.grads() = whole.grads();
  OptimizerState full(n), parts(n);
  TrainConfig train;
  for (int step = 0; step < 3; ++step) {
    optimizer_step(whole, full, train, 1e-3);
    Model copy = sharded;
    for (int r = 0; r < 3; ++r) {
      OptimizerState rank_state = parts;
      Model rank_model = copy;
      const dist::ShardRange s = dist::shard_range(n, 3, r);
      optimizer_step(rank_model, rank_state, train, 1e-3, s.begin, s.end);
      for (int64_t i = s.begin; i < s.end; ++i) {
        sharded.weights()[i] = rank_model.weights()[i];
        parts.exp_avg[i] = rank_state.exp_avg[i];
        parts.exp_avg_sq[i] = rank_state.exp_avg_sq[i];
      }
      if (r == 2) parts.step = rank_state.step;
    }
  }
  EXPECT_EQ(sharded.weights(), whole.weights());
  EXPECT_EQ(parts.exp_avg, full.exp_avg);
  EXPECT_EQ(parts.exp_avg_sq, full.exp_avg_sq);
  EXPECT_EQ(parts.step, full.step);
  Model other(tiny_model());
  EXPECT_NE(error_of([&] { optimizer_step(other, full, train, 1e-3, 0, n + 1); }).find("outside"), std::string::npos);
}


TEST(Shards, PaddedSizeHoldsEqualPieces) {
  for (int64_t n : {0, 1, 63, 64, 65, 1000, 29920, 123457})
    for (int world : {1, 2, 3, 8}) {
      const int64_t padded = dist::shard_padded_size(n, world);
      EXPECT_GE(padded, n);
      ASSERT_EQ(padded % world, 0);
      const int64_t piece = padded / world;
      EXPECT_EQ(piece % 64, 0);
      for (int r = 0; r < world; ++r) {
        const dist::ShardRange s = dist::shard_range(n, world, r);
        EXPECT_LE(s.size(), piece);
        if (s.size() > 0) {
          EXPECT_EQ(s.begin, piece * r) << n << " " << world << " " << r;
        }
      }
    }
}

// Optimizer states holding only a shard's moments (moments_begin on): the ranks' steps put
// together are the whole step, bit for bit.
TEST(ShardedOptimizer, ShardStatesTogetherEqualTheWholeStep) {
  Model whole(tiny_model());
  whole.init(7);
  const int64_t n = whole.params().total();
  for (int64_t i = 0; i < n; ++i) whole.grads()[i] = 0.001f * static_cast<float>((i * 37) % 101 - 50);
  Model sharded = whole;
  OptimizerState full(n);
  std::vector<OptimizerState> ranks;
  for (int r = 0; r < 3; ++r) {
    const dist::ShardRange s = dist::shard_range(n, 3, r);
    ranks.emplace_back(s.size(), s.begin);
  }
  TrainConfig train;
  for (int step = 0; step < 3; ++step) {
    optimizer_step(whole, full, train, 1e-3);
    for (OptimizerState& rank : ranks)
      optimizer_step(sharded, rank, train, 1e-3, rank.moments_begin, rank.moments_end());
  }
  EXPECT_EQ(sharded.weights(), whole.weights());
  std::vector<float> m, v;
  for (const OptimizerState& r : ranks) {
    m.insert(m.end(), r.exp_avg.begin(), r.exp_avg.end());
    v.insert(v.end(), r.exp_avg_sq.begin(), r.exp_avg_sq.end());
  }
  EXPECT_EQ(m, full.exp_avg);
  EXPECT_EQ(v, full.exp_avg_sq);
  const std::string outside = error_of([&] { optimizer_step(sharded, ranks[1], train, 1e-3, 0, n); });
  EXPECT_NE(outside.find("holds the moments of parameters"), std::string::npos) << outside;
}

// Optimizer memory falls with the rank count: each of 2 ranks keeps half the moments of one
// process (to the 64-float alignment of the shards), and trains with them.
TEST(ShardedOptimizer, EachOfTwoRanksKeepsHalfTheMoments) {
  Model model(tiny_model());
  model.init(5);
  const int64_t n = model.params().total();
  // The head starts at zero, which stops every other gradient: perturb it all.
  for (int64_t i = 0; i < n; ++i) model.weights()[i] += 0.01f * static_cast<float>(i % 7 - 3);
  OptimizerState alone(n);
  const int64_t whole_bytes = make_engine({"cpu", "", true}, model, &alone)->optimizer_bytes();
  EXPECT_EQ(whole_bytes, n * 8);
  std::vector<uint8_t> tokens(2 * 64);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint8_t>(i * 7);
  for (int rank : {0, 1}) {
    const std::unique_ptr<dist::Communicator> comm = dist::make_local_stand_in(rank, 2);
    const dist::ShardRange s = dist::shard_range(n, 2, rank);
    OptimizerState shard(s.size(), s.begin);
    const std::unique_ptr<Engine> engine = make_engine({"cpu", "", true, false, comm.get()}, model, &shard);
    EXPECT_NEAR(static_cast<double>(engine->optimizer_bytes()) / whole_bytes, 0.5, 64.0 / n) << "rank " << rank;
    engine->zero_grads();
    engine->forward_backward(tokens.data(), 2, DropoutContext{}, 0.5f);
    EXPECT_TRUE(std::isfinite(engine->step(TrainConfig{}, 1e-3, 1.0f)));
    EXPECT_EQ(shard.exp_avg.size(), static_cast<size_t>(s.size()));
    EXPECT_NE(shard.exp_avg_sq, std::vector<float>(s.size(), 0.0f)) << "rank " << rank;
  }
  const std::unique_ptr<dist::Communicator> second = dist::make_local_stand_in(1, 2);
  OptimizerState whole(n);
  const std::string refused = error_of([&] { make_engine({"cpu", "", true, false, second.get()}, model, &whole); });
  EXPECT_NE(refused.find("share_weights"), std::string::npos) << refused;
}

}  // namespace
}  // namespace spt
