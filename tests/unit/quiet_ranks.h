// Rank `rank` of a world whose collectives leave their input as it is: enough to see what
// one rank of a data-parallel job keeps, computes and refuses without a second process
// (the real collectives run under mpirun in test_dist_mpi.cpp, over NCCL on GPU machines).
#pragma once

#include <string>

#include "dist/communicator.h"

namespace spt::testing_support {

class QuietRanks final : public dist::Communicator {
 public:
  // device: stands for a device communicator (NCCL), as the CUDA engine requires.
  QuietRanks(int rank, int world, bool device = false) : rank_(rank), world_(world), device_(device) {}
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string describe() const override { return "quiet ranks"; }
  bool device_buffers() const override { return device_; }
  void all_reduce_sum(float*, int64_t) override {}
  void reduce_scatter(float*, int64_t) override {}
  void all_gather(float*, int64_t) override {}
  void broadcast(float*, int64_t, int) override {}
  void all_reduce_sum_host(double*, int64_t) override {}
  void broadcast_host(void*, int64_t, int) override {}
  void barrier() override {}

 private:
  int rank_, world_;
  bool device_;
};

}  // namespace spt::testing_support
