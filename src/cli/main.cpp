// spt: train, evaluate and sample Sparse Transformers; inspect attention patterns.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"spt: Sparse Transformers for long sequences of bytes, pixels and audio"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("spt ") + SPT_VERSION);
  spt::cli::add_info_command(app);
  spt::cli::add_info_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const spt::Error& e) {
    std::fprintf(stderr, "spt: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spt: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
