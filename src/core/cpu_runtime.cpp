#include "core/cpu_runtime.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

namespace spt::cpu {

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "";
}

void reexec_with_cpu_runtime_settings(char** argv) {
  if (argv == nullptr || argv[0] == nullptr) return;
  bool changed = false;
  auto set_default = [&](const char* name, const char* value) {
    if (std::getenv(name) != nullptr) return;
    setenv(name, value, 1);
    changed = true;
  };
  // OpenBLAS's kernel families without AVX2, which it falls back to for unknown CPUs.
  constexpr std::string_view kGeneric[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
                                           "Katmai", "Coppermine", "Northwood", "Banias", "Opteron", "Barcelona"};
  const std::string core = blas_core_name();
  if (std::find(std::begin(kGeneric), std::end(kGeneric), core) != std::end(kGeneric)) {
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
      set_default("OPENBLAS_CORETYPE", "SkylakeX");
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      set_default("OPENBLAS_CORETYPE", "Haswell");
  }
  set_default("OPENBLAS_THREAD_TIMEOUT", "4");
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) set_default("GOMP_SPINCOUNT", "1000");
  if (changed) execv("/proc/self/exe", argv);  // returns only on failure: then run on as we are
}

}  // namespace spt::cpu
