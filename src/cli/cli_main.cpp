#include "cli/cli_main.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

namespace {

// Every error is one line on stderr, so scripts and people see the whole cause at once.
int report_error(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::fprintf(stderr, "spt: error: %s\n", text.c_str());
  return 1;
}

}  // namespace

namespace spt::cli {

int run_main(int argc, char** argv) {
  CLI::App app{"spt: Sparse Transformers for long sequences of bytes, pixels and audio"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("spt ") + SPT_VERSION);
  app.option_defaults()->always_capture_default();  // --help shows every option's default
  add_prepare_command(app);
  add_train_command(app);
  add_eval_command(app);
  add_sample_command(app);
  add_pattern_command(app);
  add_gradients_command(app);
  add_info_command(app);
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

}  // namespace spt::cli
