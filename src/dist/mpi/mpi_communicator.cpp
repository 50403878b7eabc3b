// The CPU backend's communicator: Open MPI (or any MPI) between the processes mpirun
// started, on host buffers. MPI is initialised here, by the first world larger than one,
// and finalised when the communicator is destroyed on a clean exit; a rank leaving with
// an error skips MPI_Finalize, so mpirun ends the other ranks instead of leaving them
// waiting in a collective.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <exception>
#include <vector>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/mpi/mpi_world.h"

namespace spt::dist {
namespace {

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(message(call, " failed: ", std::string(text, length)));
}

// MPI counts are ints: large buffers go in pieces of this many elements.
constexpr int64_t kPiece = int64_t{1} << 30;

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const LaunchInfo& launch) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &world_), "MPI_Comm_size");
    SPT_CHECK(rank_ == launch.rank && world_ == launch.world, "MPI sees rank ", rank_, " of ", world_,
              " but the environment says ", launch.describe(),
              ": an MPI other than the mpirun that started spt? launch with that MPI's own mpirun");
  }
  ~MpiCommunicator() override {
    if (std::uncaught_exceptions() > 0) return;
    // MPI_Finalize requires every request complete (a step abandoned after its buckets went).
    MPI_Waitall(static_cast<int>(reductions_.size()), reductions_.data(), MPI_STATUSES_IGNORE);
    MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string describe() const override { return message("MPI, ", world_, " ranks"); }
  bool device_buffers() const override { return false; }

  void all_reduce_sum(float* x, int64_t n) override {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, x + at, static_cast<int>(std::min(kPiece, n - at)), MPI_FLOAT, MPI_SUM,
                              MPI_COMM_WORLD),
                "MPI_Allreduce");
  }
  // Uneven shards need no padding here: MPI takes one count per rank.
  void reduce_scatter(float* x, int64_t n) override {
    std::vector<int> counts, offsets;
    shard_counts(n, "reduce-scatter", counts, offsets);
    const ShardRange mine = shard_range(n, world_, rank_);
    // In place, MPI would leave the result at the start of x, not at this rank's shard.
    std::vector<float> sum(static_cast<size_t>(mine.size()));  // (shard)
    check_mpi(MPI_Reduce_scatter(x, sum.data(), counts.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Reduce_scatter");
    std::copy(sum.begin(), sum.end(), x + mine.begin);
  }
  void all_gather(float* x, int64_t n) override {
    std::vector<int> counts, offsets;
    shard_counts(n, "all-gather", counts, offsets);
    check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts.data(), offsets.data(), MPI_FLOAT,
                             MPI_COMM_WORLD),
              "MPI_Allgatherv");
  }
  void broadcast(float* x, int64_t n, int root) override {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Bcast(x + at, static_cast<int>(std::min(kPiece, n - at)), MPI_FLOAT, root, MPI_COMM_WORLD),
                "MPI_Bcast");
  }
  // One MPI_Ireduce per piece (MPI_IN_PLACE on its root), their requests kept until
  // wait_reductions. Open MPI moves a nonblocking collective on only inside MPI calls, so
  // progress_reductions tests them between the layers of the backward.
  void reduce_to_roots(float* x, const std::vector<ReducePiece>& bucket) override {
    for (const ReducePiece& piece : bucket)
      for (int64_t at = piece.begin; at < piece.end; at += kPiece) {
        MPI_Request request = MPI_REQUEST_NULL;
        check_mpi(MPI_Ireduce(piece.root == rank_ ? MPI_IN_PLACE : x + at, x + at,
                              static_cast<int>(std::min(kPiece, piece.end - at)), MPI_FLOAT, MPI_SUM, piece.root,
                              MPI_COMM_WORLD, &request),
                  "MPI_Ireduce");
        reductions_.push_back(request);
      }
  }
  void progress_reductions() override {
    if (reductions_.empty()) return;
    int done = 0;
    check_mpi(MPI_Testall(static_cast<int>(reductions_.size()), reductions_.data(), &done, MPI_STATUSES_IGNORE),
              "MPI_Testall");
    if (done) reductions_.clear();
  }
  void wait_reductions() override {
    check_mpi(MPI_Waitall(static_cast<int>(reductions_.size()), reductions_.data(), MPI_STATUSES_IGNORE),
              "MPI_Waitall");
    reductions_.clear();
  }
  void all_reduce_sum_host(double* x, int64_t n) override {
    SPT_CHECK(n < INT_MAX, "MPI all-reduce of ", n, " values: more than an MPI count holds");
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, x, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
  }
  void broadcast_host(void* data, int64_t bytes, int root) override {
    char* at = static_cast<char*>(data);
    for (int64_t done = 0; done < bytes; done += kPiece)
      check_mpi(MPI_Bcast(at + done, static_cast<int>(std::min(kPiece, bytes - done)), MPI_BYTE, root, MPI_COMM_WORLD),
                "MPI_Bcast");
  }
  void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

 private:
  // Every rank's shard_range(n) as MPI counts and offsets.
  void shard_counts(int64_t n, const char* what, std::vector<int>& counts, std::vector<int>& offsets) const {
    SPT_CHECK(n < INT_MAX, "MPI ", what, " of ", n, " floats: more than an MPI count holds");
    counts.resize(world_);
    offsets.resize(world_);
    for (int r = 0; r < world_; ++r) {
      const ShardRange shard = shard_range(n, world_, r);
      counts[r] = static_cast<int>(shard.size());
      offsets[r] = static_cast<int>(shard.begin);
    }
  }

  int rank_ = 0, world_ = 1;
  std::vector<MPI_Request> reductions_;  // queued by reduce_to_roots
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch) {
  return std::make_unique<MpiCommunicator>(launch);
}

}  // namespace spt::dist
