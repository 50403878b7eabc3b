// Where this process stands in a data-parallel job, read from the environment that the
// launcher sets: torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), Open
// MPI's mpirun (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK) or Slurm's srun (SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID). When several are present the first of that list wins
// (torchrun inside an srun allocation, mpirun inside one). With none set the process is
// rank 0 of a world of 1 and trains exactly as a plain `spt train` does.
#pragma once

#include <functional>
#include <string>

namespace spt::dist {

inline constexpr int kDefaultMasterPort = 29500;
inline constexpr double kDefaultRendezvousTimeout = 300;  // seconds (SPT_RENDEZVOUS_TIMEOUT)
inline constexpr double kDefaultCollectiveTimeout = 600;  // seconds (SPT_COLLECTIVE_TIMEOUT)

struct LaunchInfo {
  std::string launcher = "none";  // none | torchrun | mpirun | srun
  int rank = 0;
  int world = 1;
  int local_rank = 0;             // picks the GPU on a host
  std::string master_addr;        // MASTER_ADDR; empty when unset
  int master_port = kDefaultMasterPort;
  // How long rank 0 waits for every rank to connect, and the others keep retrying.
  double rendezvous_timeout = kDefaultRendezvousTimeout;
  // How long one GPU collective may wait for the other ranks before the job is ended.
  double collective_timeout = kDefaultCollectiveTimeout;
  bool distributed() const { return world > 1; }
  std::string describe() const;   // "rank 1 of 2 (mpirun, local rank 1)"
};

// Reads the launch from `lookup` (a getenv: nullptr for an unset variable). A value that
// is not a number, a rank outside [0, world) or a port outside [1, 65535] is an error
// naming the variable.
LaunchInfo parse_launch(const std::function<const char*(const char*)>& lookup);
LaunchInfo launch_from_environment();

}  // namespace spt::dist
