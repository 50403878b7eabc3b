// Made only in builds with MPI (SPT_HAVE_MPI); dist/world.h chooses it.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace spt::dist {

// MPI_COMM_WORLD of the job mpirun started; its rank and size must match `launch`.
std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch);

}  // namespace spt::dist
