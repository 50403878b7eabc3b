// spt: train, evaluate and sample Sparse Transformers; inspect attention patterns.
#include "cli/cli_main.h"
#include "core/cpu_runtime.h"

int main(int argc, char** argv) {
  // Picks OpenBLAS kernels for CPUs it does not recognise and stops idle BLAS/OpenMP
  // threads from spinning; restarts the process once when it changes anything.
  spt::cpu::reexec_with_cpu_runtime_settings(argv);
  return spt::cli::run_main(argc, argv);
}
