// `spt info`: what this build contains and what machine it runs on.
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "cli/commands.h"
#include "core/parallel.h"

namespace spt::cli {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

void run() {
  std::printf("spt %s\n", SPT_VERSION);
#ifdef SPT_HAVE_CUDA
  std::printf("backends: cpu, cuda\n");
#else
  std::printf("backends: cpu (built without CUDA)\n");
#endif
#ifdef SPT_HAVE_SNDFILE
  std::printf("audio input: libsndfile\n");
#else
  std::printf("audio input: WAV only (built without libsndfile)\n");
#endif
  utsname name{};
  uname(&name);
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  std::printf("machine: %s %s, %s\n", name.sysname, name.machine, cpu_model().c_str());
  std::printf("cpu threads: %d (OMP_NUM_THREADS sets this), memory: %.1f GiB\n", num_threads(),
              static_cast<double>(pages) * page_size / (1024.0 * 1024.0 * 1024.0));
}

}  // namespace

void add_info_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("info", "Print the build (backends, version) and the machine");
  cmd->callback([] { run(); });
}

}  // namespace spt::cli
