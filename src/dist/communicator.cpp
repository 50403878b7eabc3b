#include "dist/communicator.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace spt::dist {
namespace {

// Rank `rank` of `world` whose collectives return their input: the single process (rank 0
// of 1), or a stand-in rank for tests.
class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator(int rank, int world, bool device) : rank_(rank), world_(world), device_(device) {}
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string describe() const override {
    return world_ == 1 ? "one process" : message("rank ", rank_, " of ", world_, " local stand-ins");
  }
  bool device_buffers() const override { return device_; }
  void all_reduce_sum(float*, int64_t) override {}
  void reduce_scatter(float*, int64_t) override {}
  void all_gather(float*, int64_t) override {}
  void broadcast(float*, int64_t, int) override {}
  void reduce_to_roots(float*, const std::vector<ReducePiece>&) override {}
  void wait_reductions() override {}
  void all_reduce_sum_host(double*, int64_t) override {}
  void broadcast_host(void*, int64_t, int) override {}
  void barrier() override {}

 private:
  int rank_, world_;
  bool device_;
};

int64_t full_shard_size(int64_t n, int world) {
  const int64_t per_rank = (n + world - 1) / world;
  return (per_rank + kShardAlignment - 1) / kShardAlignment * kShardAlignment;
}

// Moves every rank's shard between `root` and its rank, one host broadcast per shard from
// its sender (root when scattering, the shard's rank when gathering); the ranks a shard
// only passes through receive it into a scratch buffer. `at(r, piece)` is where rank r's
// shard is read or written on this rank, null where it passes through; root's own shard
// stays where it is (`at` copies it).
template <typename At>
void move_shards(Communicator& comm, int64_t n, int root, bool scatter, At&& at) {
  std::vector<float> scratch;  // (a shard)
  for (int r = 0; r < comm.world(); ++r) {
    const ShardRange piece = shard_range(n, comm.world(), r);
    float* buffer = at(r, piece);
    if (piece.size() == 0 || r == root) continue;
    if (buffer == nullptr) {
      scratch.resize(static_cast<size_t>(piece.size()));
      buffer = scratch.data();
    }
    comm.broadcast_host(buffer, piece.size() * static_cast<int64_t>(sizeof(float)), scatter ? root : r);
  }
}

}  // namespace

ShardRange shard_range(int64_t n, int world, int rank) {
  SPT_CHECK(n >= 0 && world >= 1 && rank >= 0 && rank < world, "shard of rank ", rank, " in a world of ", world,
            " over ", n, " values is undefined");
  const int64_t aligned = full_shard_size(n, world);
  const int64_t begin = std::min(n, aligned * rank);
  return {begin, std::min(n, begin + aligned)};
}

int64_t shard_padded_size(int64_t n, int world) {
  SPT_CHECK(n >= 0 && world >= 1, "shards of ", n, " values over ", world, " ranks are undefined");
  return full_shard_size(n, world) * world;
}

std::unique_ptr<Communicator> make_single_communicator() { return std::make_unique<LocalCommunicator>(0, 1, false); }

std::unique_ptr<Communicator> make_local_stand_in(int rank, int world, bool device_buffers) {
  SPT_CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " of a world of ", world, " does not exist");
  return std::make_unique<LocalCommunicator>(rank, world, device_buffers);
}

double all_sum(Communicator& comm, double value) {
  comm.all_reduce_sum_host(&value, 1);
  return value;
}

void broadcast_string(Communicator& comm, std::string& text, int root) {
  int64_t size = static_cast<int64_t>(text.size());
  comm.broadcast_host(&size, sizeof size, root);
  text.resize(static_cast<size_t>(size));
  comm.broadcast_host(text.data(), size, root);
}

void scatter_shards_host(Communicator& comm, const float* whole, float* shard, int64_t n, int root) {
  const int rank = comm.rank();
  SPT_CHECK(rank != root || n == 0 || whole != nullptr, "scatter of ", n, " values: root ", root, " has no buffer to send");
  move_shards(comm, n, root, true, [&](int r, ShardRange piece) -> float* {
    if (rank != root) return r == rank ? shard : nullptr;
    if (r == rank) std::copy(whole + piece.begin, whole + piece.end, shard);
    return const_cast<float*>(whole) + piece.begin;  // root only sends it
  });
}

void gather_shards_host(Communicator& comm, const float* shard, float* whole, int64_t n, int root) {
  const int rank = comm.rank();
  SPT_CHECK(rank != root || n == 0 || whole != nullptr, "gather of ", n, " values: root ", root, " has no buffer to fill");
  move_shards(comm, n, root, false, [&](int r, ShardRange piece) -> float* {
    if (rank != root) return r == rank ? const_cast<float*>(shard) : nullptr;  // this rank only sends it
    if (r == rank) std::copy(shard, shard + piece.size(), whole + piece.begin);
    return whole + piece.begin;
  });
}

}  // namespace spt::dist
