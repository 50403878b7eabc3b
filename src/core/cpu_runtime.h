// Process-wide settings of the CPU backend's two thread pools (OpenBLAS's and OpenMP's),
// which both libraries read only when they load.
#pragma once

#include <string>

namespace spt::cpu {

// The kernel family OpenBLAS chose when it loaded (e.g. "SkylakeX", "Haswell", "Zen").
std::string blas_core_name();

// Runtime settings of the two thread pools that share the cores, which both libraries
// read only when they load, so they must be in the environment before the program
// starts. If any is missing this sets it and re-executes the program (the user's own
// values are always kept); otherwise it returns. Call it first thing in main(), with
// main's argv.
//  - OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2), only when OpenBLAS fell back
//    to its generic SSE3 kernels because it does not know the CPU (0.3.21 does not know
//    Emerald Rapids): those are about 5x slower.
//  - OPENBLAS_THREAD_TIMEOUT=4 and GOMP_SPINCOUNT=1000: sgemm's threads and the OpenMP
//    threads of the other ops take turns on the same cores; by default each pool's idle
//    threads keep spinning for milliseconds after their work and take a core from the
//    other pool (measured: sgemm at 135 GFLOP/s instead of about 200 on two cores).
void reexec_with_cpu_runtime_settings(char** argv);

}  // namespace spt::cpu
