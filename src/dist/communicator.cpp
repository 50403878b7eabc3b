#include "dist/communicator.h"

#include <algorithm>

#include "core/error.h"

namespace spt::dist {
namespace {

constexpr int64_t kShardAlign = 64;

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  std::string describe() const override { return "one process"; }
  bool device_buffers() const override { return false; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_gather(float*, int64_t) override {}
  void broadcast(float*, int64_t, int) override {}
  void all_reduce_sum_host(double*, int64_t) override {}
  void broadcast_host(void*, int64_t, int) override {}
  void barrier() override {}
};

}  // namespace

ShardRange shard_range(int64_t n, int world, int rank) {
  SPT_CHECK(n >= 0 && world >= 1 && rank >= 0 && rank < world, "shard of rank ", rank, " in a world of ", world,
            " over ", n, " values is undefined");
  const int64_t per_rank = (n + world - 1) / world;
  const int64_t aligned = (per_rank + kShardAlign - 1) / kShardAlign * kShardAlign;
  const int64_t begin = std::min(n, aligned * rank);
  return {begin, std::min(n, begin + aligned)};
}

std::unique_ptr<Communicator> make_single_communicator() { return std::make_unique<SingleCommunicator>(); }

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

}  // namespace spt::dist
