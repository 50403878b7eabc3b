// NCCL between the GPUs of a job. The communicator is non-blocking (NCCL's config
// blocking = 0), so no call can wait forever: every initialisation and collective is
// polled until it completes, NCCL reports an error (a rank died, a network failed), or
// the collective timeout passes; then the communicator is aborted and one error names
// what happened, so the rank exits and its launcher (or the rendezvous watch) ends the
// others.
//
// The collectives run on the model's stream, the legacy default stream, after the work
// queued there, and the host waits for them; only the gradient buckets run on a stream of
// their own, so that they overlap with the rest of the backward. That stream is
// non-blocking, for the legacy default stream would otherwise serialize with it; events
// order it: a bucket waits for the backward work queued before it, and wait_reductions
// makes the default stream wait for the buckets. Every other collective calls
// wait_reductions first, so this communicator's kernels never run on both streams at
// once (NCCL promises no progress for two of them running concurrently).
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "dist/cuda/nccl_world.h"

namespace spt::dist {
namespace {

using Clock = std::chrono::steady_clock;

void check_nccl(ncclResult_t result, const char* call) {
  if (result == ncclSuccess || result == ncclInProgress) return;
  throw Error(message("NCCL call ", call, " failed: ", ncclGetErrorString(result), " (", ncclGetLastError(nullptr),
                      "); NCCL_DEBUG=WARN tells more"));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const LaunchInfo& launch, const std::string& id) : launch_(launch) {
    int devices = 0;
    SPT_CUDA_CHECK(cudaGetDeviceCount(&devices));
    SPT_CHECK(launch.local_rank < devices, launch.describe(), " needs GPU ", launch.local_rank, " but this host has ",
              devices, ": start at most ", devices, " ranks per host");
    SPT_CUDA_CHECK(cudaSetDevice(launch.local_rank));
    ncclUniqueId unique{};
    SPT_CHECK(id.size() == sizeof unique, "the NCCL id from rank 0 is ", id.size(), " bytes, not ", sizeof unique,
              ": ranks of different spt builds?");
    std::memcpy(&unique, id.data(), sizeof unique);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    check_nccl(ncclCommInitRankConfig(&comm_, launch.world, unique, launch.rank, &config), "ncclCommInitRankConfig");
    settle("joining the NCCL world", launch.rendezvous_timeout);
    SPT_CUDA_CHECK(cudaMalloc(&scratch_, kScratchBytes));
    SPT_CUDA_CHECK(cudaStreamCreateWithFlags(&bucket_stream_, cudaStreamNonBlocking));
    SPT_CUDA_CHECK(cudaEventCreateWithFlags(&computed_, cudaEventDisableTiming));
    SPT_CUDA_CHECK(cudaEventCreateWithFlags(&reduced_, cudaEventDisableTiming));
  }
  ~NcclCommunicator() override {
    if (std::uncaught_exceptions() > 0 || failed_) {
      ncclCommAbort(comm_);
    } else {
      ncclCommDestroy(comm_);
    }
    cudaFree(scratch_);
    cudaEventDestroy(computed_);
    cudaEventDestroy(reduced_);
    cudaStreamDestroy(bucket_stream_);
  }
  int rank() const override { return launch_.rank; }
  int world() const override { return launch_.world; }
  std::string describe() const override { return message("NCCL, ", launch_.world, " ranks"); }
  bool device_buffers() const override { return true; }

  void all_reduce_sum(float* x, int64_t n) override {
    wait_reductions();
    check_nccl(ncclAllReduce(x, x, n, ncclFloat, ncclSum, comm_, nullptr), "ncclAllReduce");
    complete("an all-reduce");
  }
  // Equal pieces of the padded buffer (shard_padded_size); this rank's piece starts where
  // its shard does, so the call is NCCL's in-place form.
  void reduce_scatter(float* x, int64_t n) override {
    const int64_t piece = shard_padded_size(n, launch_.world) / launch_.world;
    if (piece == 0) return;
    wait_reductions();
    check_nccl(ncclReduceScatter(x, x + piece * launch_.rank, piece, ncclFloat, ncclSum, comm_, nullptr),
               "ncclReduceScatter");
    complete("a reduce-scatter");
  }
  void all_gather(float* x, int64_t n) override {
    wait_reductions();
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < launch_.world; ++r) {
      const ShardRange shard = shard_range(n, launch_.world, r);
      if (shard.size() > 0)
        check_nccl(ncclBroadcast(x + shard.begin, x + shard.begin, shard.size(), ncclFloat, r, comm_, nullptr),
                   "ncclBroadcast");
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    complete("an all-gather");
  }
  void broadcast(float* x, int64_t n, int root) override {
    wait_reductions();
    check_nccl(ncclBroadcast(x, x, n, ncclFloat, root, comm_, nullptr), "ncclBroadcast");
    complete("a broadcast");
  }
  // In place, one ncclReduce per piece: unlike ncclReduceScatter it takes any count, so
  // no padding. The pieces of a bucket go as one group, one launch.
  void reduce_to_roots(float* x, const std::vector<ReducePiece>& bucket) override {
    if (bucket.empty()) return;
    SPT_CUDA_CHECK(cudaEventRecord(computed_, nullptr));
    SPT_CUDA_CHECK(cudaStreamWaitEvent(bucket_stream_, computed_, 0));
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    for (const ReducePiece& piece : bucket)
      check_nccl(ncclReduce(x + piece.begin, x + piece.begin, static_cast<size_t>(piece.end - piece.begin), ncclFloat,
                            ncclSum, piece.root, comm_, bucket_stream_),
                 "ncclReduce");
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    // A non-blocking communicator may still be queueing the group: recording an event on
    // the stream before it has would not order the bucket.
    settle("queueing a gradient bucket", launch_.collective_timeout);
    buckets_queued_ = true;
  }
  // Asynchronous: a failure or a hang of a bucket shows in the next collective's wait,
  // which the default stream's wait for the buckets holds up.
  void wait_reductions() override {
    if (!buckets_queued_) return;
    SPT_CUDA_CHECK(cudaEventRecord(reduced_, bucket_stream_));
    SPT_CUDA_CHECK(cudaStreamWaitEvent(nullptr, reduced_, 0));
    buckets_queued_ = false;
  }
  void all_reduce_sum_host(double* x, int64_t n) override {
    wait_reductions();
    for (int64_t at = 0; at < n; at += kScratchBytes / sizeof(double)) {
      const int64_t count = std::min<int64_t>(n - at, kScratchBytes / sizeof(double));
      SPT_CUDA_CHECK(cudaMemcpy(scratch_, x + at, count * sizeof(double), cudaMemcpyHostToDevice));
      check_nccl(ncclAllReduce(scratch_, scratch_, count, ncclDouble, ncclSum, comm_, nullptr), "ncclAllReduce");
      complete("an all-reduce");
      SPT_CUDA_CHECK(cudaMemcpy(x + at, scratch_, count * sizeof(double), cudaMemcpyDeviceToHost));
    }
  }
  void broadcast_host(void* data, int64_t bytes, int root) override {
    wait_reductions();
    char* host = static_cast<char*>(data);
    for (int64_t at = 0; at < bytes; at += static_cast<int64_t>(kScratchBytes)) {
      const size_t count = static_cast<size_t>(std::min<int64_t>(bytes - at, kScratchBytes));
      SPT_CUDA_CHECK(cudaMemcpy(scratch_, host + at, count, cudaMemcpyHostToDevice));
      check_nccl(ncclBroadcast(scratch_, scratch_, count, ncclChar, root, comm_, nullptr), "ncclBroadcast");
      complete("a broadcast");
      SPT_CUDA_CHECK(cudaMemcpy(host + at, scratch_, count, cudaMemcpyDeviceToHost));
    }
  }
  void barrier() override {
    double one = 1;
    all_reduce_sum_host(&one, 1);
  }

 private:
  static constexpr size_t kScratchBytes = size_t{1} << 20;

  // Waits until NCCL has taken the last call (non-blocking communicators may still be
  // enqueueing it), or fails.
  void settle(const char* what, double timeout) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(timeout));
    for (;;) {
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(what, ncclGetErrorString(state));
      if (Clock::now() > deadline) fail(what, message("no answer within ", timeout, " s"));
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  // The collective was enqueued: waits for the stream, watching NCCL's error state.
  void complete(const char* what) {
    settle(what, launch_.collective_timeout);
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(launch_.collective_timeout));
    for (;;) {
      const cudaError_t status = cudaStreamQuery(nullptr);
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) SPT_CUDA_CHECK(status);
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) fail(what, ncclGetErrorString(state));
      if (Clock::now() > deadline)
        fail(what, message("the other ranks did not join within ", launch_.collective_timeout,
                           " s (SPT_COLLECTIVE_TIMEOUT sets the wait)"));
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  [[noreturn]] void fail(const char* what, const std::string& why) {
    failed_ = true;
    throw Error(message(launch_.describe(), ": ", what, " over NCCL failed: ", why,
                        "; another rank died or hangs (see its output)"));
  }

  LaunchInfo launch_;
  ncclComm_t comm_ = nullptr;
  void* scratch_ = nullptr;
  bool failed_ = false;
  cudaStream_t bucket_stream_ = nullptr;  // the gradient buckets' (non-blocking)
  cudaEvent_t computed_ = nullptr;  // on the default stream: the work a bucket waits for
  cudaEvent_t reduced_ = nullptr;   // on bucket_stream_: the buckets the default stream waits for
  bool buckets_queued_ = false;     // since the last wait_reductions
};

}  // namespace

std::string nccl_unique_id() {
  ncclUniqueId id{};
  check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  return std::string(reinterpret_cast<const char*>(&id), sizeof id);
}

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const std::string& id) {
  return std::make_unique<NcclCommunicator>(launch, id);
}

}  // namespace spt::dist
