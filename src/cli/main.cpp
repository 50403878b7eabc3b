// spt: train, evaluate and sample Sparse Transformers; inspect attention patterns.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "ops/linear.h"

namespace {

// Every error is one line on stderr, so scripts and people see the whole cause at once.
int report_error(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::fprintf(stderr, "spt: error: %s\n", text.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Picks OpenBLAS kernels for CPUs it does not recognise and stops idle BLAS/OpenMP
  // threads from spinning; restarts the process once when it changes anything.
  spt::cpu::reexec_with_cpu_runtime_settings(argv);
  CLI::App app{"spt: Sparse Transformers for long sequences of bytes, pixels and audio"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("spt ") + SPT_VERSION);
  app.option_defaults()->always_capture_default();  // --help shows every option's default
  spt::cli::add_prepare_command(app);
  spt::cli::add_train_command(app);
  spt::cli::add_eval_command(app);
  spt::cli::add_sample_command(app);
  spt::cli::add_pattern_command(app);
  spt::cli::add_gradients_command(app);
  spt::cli::add_info_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help, version and the silent RuntimeError keep CLI11's handling; usage errors get one line.
    if (e.get_exit_code() == 0 || e.get_name() == "RuntimeError") return app.exit(e);
    return report_error(std::string(e.what()) + " (run `spt --help` or `spt <command> --help` for usage)");
  } catch (const std::bad_alloc&) {
    std::string command = "spt";
    for (const CLI::App* sub : app.get_subcommands()) command += " " + sub->get_name();
    return report_error("out of memory in `" + command + "` (std::bad_alloc): lower the sizes it was given "
                        "(--batch, --ctx, --width, --layers, --count, --length) or free memory");
  } catch (const std::exception& e) {
    return report_error(e.what());
  }
  return 0;
}
