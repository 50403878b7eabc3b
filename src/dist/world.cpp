#include "dist/world.h"

#include "core/error.h"
#ifdef SPT_HAVE_MPI
#include "dist/mpi/mpi_world.h"
#endif
#ifdef SPT_HAVE_NCCL
#include "dist/cuda/nccl_world.h"
#endif

namespace spt::dist {
namespace {

std::unique_ptr<Communicator> join_mpi(const LaunchInfo& launch) {
  SPT_CHECK(launch.launcher == "mpirun", "--device cpu trains data-parallel over MPI only, but this process was "
            "started by ", launch.launcher, " as ", launch.describe(), ": launch it with mpirun -np ", launch.world,
            " instead (or --device cuda)");
#ifdef SPT_HAVE_MPI
  return make_mpi_communicator(launch);
#else
  throw Error(message("mpirun started this process as ", launch.describe(),
                      ", but this spt was built without MPI: install libopenmpi-dev and rebuild (CMake finds MPI "
                      "itself), or run one process"));
#endif
}

#ifdef SPT_HAVE_NCCL
// The NCCL id from rank 0: through MPI under mpirun when there is no MASTER_ADDR, else TCP.
std::string nccl_id_everywhere(World& world, const std::string& id) {
#ifdef SPT_HAVE_MPI
  if (world.launch.launcher == "mpirun" && world.launch.master_addr.empty()) {
    world.bootstrap = make_mpi_communicator(world.launch);
    std::string bytes = id;
    broadcast_string(*world.bootstrap, bytes, 0);
    return bytes;
  }
#endif
  world.group = std::make_unique<TcpGroup>(world.launch);
  std::string bytes = world.group->broadcast(id);
  world.group->watch();
  return bytes;
}
#endif

}  // namespace

void World::finish() {
  if (comm) comm->barrier();
  if (group) group->finish();
}

World join_world(const LaunchInfo& launch, const std::string& device) {
  World world;
  world.launch = launch;
  if (!launch.distributed()) {
    world.comm = make_single_communicator();
    return world;
  }
  if (device == "cpu") {
    world.comm = join_mpi(launch);
    return world;
  }
  SPT_CHECK(device == "cuda", "unknown device '", device, "': use cpu or cuda (--device)");
#ifdef SPT_HAVE_NCCL
  const std::string id = launch.rank == 0 ? nccl_unique_id() : std::string();
  world.comm = make_nccl_communicator(launch, nccl_id_everywhere(world, id));
  return world;
#else
  throw Error(message("this process is ", launch.describe(), " on --device cuda, but this spt was built without ",
                      "NCCL: rebuild where nccl.h and libnccl are installed (CMake finds them), or run one process"));
#endif
}

}  // namespace spt::dist
