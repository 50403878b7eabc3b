// A small TCP rendezvous between the ranks of a job that no MPI connects (torchrun,
// srun): rank 0 listens on MASTER_PORT, every other rank connects to MASTER_ADDR:
// MASTER_PORT, retrying until the rendezvous timeout, and rank 0 hands every rank a
// blob (the NCCL unique id). The connections then stay open as a liveness watch: a rank
// that dies (its kernel closes the socket) or whose host vanishes (TCP keepalive, about
// 25 s) ends every other rank with one line instead of leaving it in a collective.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "dist/launch.h"

namespace spt::dist {

class TcpGroup {
 public:
  // Connects the world (launch.rank, launch.world, master address and port, rendezvous
  // timeout); throws one line naming what did not come, and the variable that sets it.
  explicit TcpGroup(const LaunchInfo& launch);
  ~TcpGroup();
  TcpGroup(const TcpGroup&) = delete;
  TcpGroup& operator=(const TcpGroup&) = delete;

  // Rank 0's bytes on every rank (the argument is ignored elsewhere).
  std::string broadcast(const std::string& bytes);
  // Starts the liveness watch: a peer's connection closing before it said it finished
  // prints "spt: error: ..." and exits this process with status 1.
  void watch();
  // This rank ended normally: tells the peers, so closing the connection is not a death.
  void finish();

 private:
  void watch_loop();
  int rank_ = 0, world_ = 1;
  double timeout_ = 0;
  std::vector<int> peers_;  // rank 0: one socket per other rank (index rank - 1); others: rank 0's
  int wake_[2] = {-1, -1};  // a pipe that stops the watch
  std::atomic<bool> finished_{false};
  std::thread watcher_;
};

}  // namespace spt::dist
