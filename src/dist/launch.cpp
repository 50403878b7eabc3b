#include "dist/launch.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace spt::dist {
namespace {

using Lookup = std::function<const char*(const char*)>;

long long integer_variable(const Lookup& lookup, const char* name, long long low, long long high) {
  const char* text = lookup(name);
  SPT_CHECK(text != nullptr, "the launcher set some of its variables but not ", name,
            ": launch through torchrun, mpirun or srun unchanged, or unset them all for one process");
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  SPT_CHECK(end != text && *end == '\0' && errno == 0 && value >= low && value <= high, name, "='", text,
            "' is not an integer in [", low, ", ", high, "]");
  return value;
}

double seconds_variable(const Lookup& lookup, const char* name, double fallback) {
  const char* text = lookup(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  SPT_CHECK(end != text && *end == '\0' && std::isfinite(value) && value > 0, name, "='", text,
            "' is not a positive number of seconds");
  return value;
}

// The launcher's variable names, most specific first.
struct LauncherNames {
  const char* launcher;
  const char* rank;
  const char* world;
  const char* local_rank;
};
constexpr LauncherNames kLaunchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
    {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
};
constexpr long long kMaxWorld = 1 << 20;

}  // namespace

std::string LaunchInfo::describe() const {
  return message("rank ", rank, " of ", world, " (", launcher, ", local rank ", local_rank, ")");
}

LaunchInfo parse_launch(const Lookup& lookup) {
  LaunchInfo info;
  info.rendezvous_timeout = seconds_variable(lookup, "SPT_RENDEZVOUS_TIMEOUT", kDefaultRendezvousTimeout);
  info.collective_timeout = seconds_variable(lookup, "SPT_COLLECTIVE_TIMEOUT", kDefaultCollectiveTimeout);
  for (const LauncherNames& names : kLaunchers) {
    if (lookup(names.rank) == nullptr && lookup(names.world) == nullptr) continue;
    info.launcher = names.launcher;
    info.world = static_cast<int>(integer_variable(lookup, names.world, 1, kMaxWorld));
    info.rank = static_cast<int>(integer_variable(lookup, names.rank, 0, info.world - 1));
    info.local_rank =
        lookup(names.local_rank) ? static_cast<int>(integer_variable(lookup, names.local_rank, 0, kMaxWorld)) : 0;
    break;
  }
  if (const char* addr = lookup("MASTER_ADDR")) info.master_addr = addr;
  if (lookup("MASTER_PORT") != nullptr)
    info.master_port = static_cast<int>(integer_variable(lookup, "MASTER_PORT", 1, 65535));
  return info;
}

LaunchInfo launch_from_environment() {
  return parse_launch([](const char* name) { return std::getenv(name); });
}

}  // namespace spt::dist
