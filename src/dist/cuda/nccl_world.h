// Made only in builds with NCCL (SPT_HAVE_NCCL); dist/world.h chooses it.
#pragma once

#include <memory>
#include <string>

#include "dist/communicator.h"

namespace spt::dist {

// A fresh ncclUniqueId as bytes (rank 0 makes it, the rendezvous hands it out).
std::string nccl_unique_id();
// Selects GPU launch.local_rank and joins the NCCL world `id` names. Its float
// collectives take device pointers and run on the default stream, after the model's
// work (gradient buckets on a stream of their own, ordered by events); each waits at most
// launch.collective_timeout seconds for the other ranks.
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const std::string& id);

}  // namespace spt::dist
