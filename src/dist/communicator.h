// The collectives data-parallel training needs, over whatever connects the ranks: MPI
// between CPU processes (host buffers), NCCL between GPUs (device buffers, ordered on
// the CUDA stream the model computes on), or nothing in a world of one process. The
// trainer and engines call this interface only, so one code path serves every backend.
// Every rank must make the same calls in the same order (they are collectives).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/launch.h"

namespace spt::dist {

// Shards start at multiples of this many floats (256 bytes).
constexpr int64_t kShardAlignment = 64;

// Rank r's shard [begin, end) of n flattened parameters: equal shards of a multiple of
// kShardAlignment floats, so every shard starts aligned, the last ones shorter or empty.
struct ShardRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
ShardRange shard_range(int64_t n, int world, int rank);
// world * (the length of a full shard) >= n: what a buffer of n values must hold for a
// collective that cuts it into `world` equal pieces (reduce_scatter on devices).
int64_t shard_padded_size(int64_t n, int world);

// Values [begin, end) of a buffer whose sum over the ranks goes to rank `root` (the rank
// whose shard holds them), in place there.
struct ReducePiece {
  int64_t begin = 0;
  int64_t end = 0;
  int root = 0;
  bool operator==(const ReducePiece&) const = default;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual std::string describe() const = 0;  // "MPI, 2 ranks"
  // True when the float collectives take device pointers (NCCL), false for host memory.
  virtual bool device_buffers() const = 0;

  // x (n), in place: the element-wise sum over the ranks, the same on every rank.
  virtual void all_reduce_sum(float* x, int64_t n) = 0;
  // x (n), in place: this rank's shard_range(n, world, rank) of x receives that range's sum
  // over the ranks; the rest of x is left undefined. Device communicators (NCCL) cut x
  // into equal pieces: they read and write shard_padded_size(n, world) floats of it, the
  // padding past n included, so device buffers are allocated that long.
  virtual void reduce_scatter(float* x, int64_t n) = 0;
  // x (n), in place: every rank's shard_range(n, world, rank) of x goes to every rank.
  virtual void all_gather(float* x, int64_t n) = 0;
  // x (n), in place: root's values on every rank.
  virtual void broadcast(float* x, int64_t n, int root) = 0;

  // Reductions queued while the caller goes on computing (gradient buckets during the
  // backward, dist/gradient_reducer.h): the pieces of one bucket of x, each summed over the
  // ranks into x on its root only (other ranks keep their values). They read x as the work
  // queued before the call leaves it (device: on the model's stream); nothing may touch the
  // pieces until wait_reductions().
  virtual void reduce_to_roots(float* x, const std::vector<ReducePiece>& bucket) = 0;
  // Lets queued reductions advance (MPI progresses only inside its calls); never waits.
  virtual void progress_reductions() {}
  // Everything after this call sees every queued reduction done (device: work queued on the
  // model's stream waits for them; the host does not).
  virtual void wait_reductions() = 0;

  // Host values whatever the backend (flags, loss sums): x (n), in place, summed over ranks.
  virtual void all_reduce_sum_host(double* x, int64_t n) = 0;
  // data (bytes) in host memory, in place: root's bytes on every rank.
  virtual void broadcast_host(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
};

// A world of one process: every collective returns its input.
std::unique_ptr<Communicator> make_single_communicator();
// Rank `rank` of a world of `world` alone in this process, its collectives returning their
// input: what one rank keeps, computes and refuses, seen without the others (tests).
// device_buffers: it stands for a device communicator (NCCL), as the CUDA engine needs.
std::unique_ptr<Communicator> make_local_stand_in(int rank, int world, bool device_buffers = false);

// Sums one host value over the ranks.
double all_sum(Communicator& comm, double value);
// Root's string on every rank (resized on the others).
void broadcast_string(Communicator& comm, std::string& text, int root);

// Host buffers, for checkpoints and resumes (rare): whole (n) is read or written on root
// only (null elsewhere); shard holds this rank's shard_range(n, world, rank). Each shard
// travels as one host broadcast from the rank that has it, so no rank but root ever holds
// more than its shard and one other.
// Root's whole values cut into every rank's shard.
void scatter_shards_host(Communicator& comm, const float* whole, float* shard, int64_t n, int root);
// Every rank's shard put together whole on root.
void gather_shards_host(Communicator& comm, const float* shard, float* whole, int64_t n, int root);

}  // namespace spt::dist
