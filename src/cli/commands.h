// Registration of the `spt` subcommands; each lives in its own cmd_<name>.cpp.
#pragma once

#include <CLI/CLI.hpp>

namespace spt::cli {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_pattern_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_prepare_command(CLI::App& app);
void add_gradients_command(CLI::App& app);

}  // namespace spt::cli
