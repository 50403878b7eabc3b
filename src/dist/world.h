// Joins the data-parallel job this process was launched into (dist/launch.h) with the
// communicator its device needs: none for a world of one; MPI on the CPU (mpirun only);
// NCCL on GPUs, its unique id handed out by MPI under mpirun or by the TCP rendezvous
// at MASTER_ADDR:MASTER_PORT otherwise. A build without MPI or NCCL says so instead of
// training alone.
#pragma once

#include <memory>
#include <string>

#include "dist/communicator.h"
#include "dist/launch.h"
#include "dist/rendezvous.h"

namespace spt::dist {

struct World {
  LaunchInfo launch;
  std::unique_ptr<TcpGroup> group;          // the rendezvous, kept as a liveness watch (may be null)
  std::unique_ptr<Communicator> bootstrap;  // MPI that handed out the NCCL id (may be null)
  std::unique_ptr<Communicator> comm;       // destroyed first
  // Every rank finished its work: a barrier, then the peers learn that closing is no death.
  void finish();
};

// device: "cpu" or "cuda" (the GPU is chosen by local rank).
World join_world(const LaunchInfo& launch, const std::string& device);

}  // namespace spt::dist
