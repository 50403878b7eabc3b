// The whole `spt` command line as a function, so that the executable's main() and the
// input fuzz test (tests/fuzz/) run exactly the same code path.
#pragma once

namespace spt::cli {

// Parses argv, runs the subcommand and returns the process exit code: 0 on success, 1
// after printing one line `spt: error: ...` on stderr, or the code a command chose (help,
// version, an interrupted training run). Does not re-exec the process or change its
// environment; main() does that before calling it.
int run_main(int argc, char** argv);

}  // namespace spt::cli
