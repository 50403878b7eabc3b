// `spt info`: what this build contains and what machine it runs on.
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/parallel.h"
#include "model/presets.h"

namespace spt::cli {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

void print_presets() {
  for (const Preset& p : presets()) {
    const ModelConfig& m = p.model;
    std::printf("%-14s %s\n%14s data %s; --layers %d --width %d --heads %d --ctx %d --pattern %s --stride %d%s\n",
                p.name.c_str(), p.summary.c_str(), "", p.data_format.c_str(), m.layers, m.width, m.heads, m.ctx,
                m.pattern.c_str(), m.stride, m.pattern == "fixed" ? (" --summary " + std::to_string(m.summary)).c_str() : "");
  }
}

void run() {
  std::printf("spt %s\n", SPT_VERSION);
#ifdef SPT_HAVE_CUDA
  std::printf("backends: cpu, cuda\n");
#else
  std::printf("backends: cpu (built without CUDA)\n");
#endif
#ifdef SPT_HAVE_SNDFILE
  std::printf("audio decoding (spt prepare, --prompt-audio): libsndfile\n");
#else
  std::printf("audio decoding: none (built without libsndfile; prepared sets and WAV output still work)\n");
#endif
#ifdef SPT_HAVE_SOXR
  std::printf("audio resampling: libsoxr\n");
#else
  std::printf("audio resampling: none (built without libsoxr; recordings must already be at --sample-rate)\n");
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
  auto list_presets = std::make_shared<bool>(false);
  cmd->add_flag("--presets", *list_presets, "list the named configurations for --preset");
  cmd->callback([list_presets] { *list_presets ? print_presets() : run(); });
}

}  // namespace spt::cli
