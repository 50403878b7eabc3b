// `spt info`: what this build contains and what machine it runs on.
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/parallel.h"
#include "io/input_file.h"
#include "model/model_size.h"
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

// Every preset with its model and training settings, as the flags that reproduce it.
void print_presets() {
  for (const Preset& p : presets()) {
    const ModelConfig& m = p.model;
    const TrainConfig& t = p.train;
    std::string sizes;
    for (int size : m.pos_sizes) {
      if (!sizes.empty()) sizes += ',';
      sizes += std::to_string(size);
    }
    std::printf("%-14s %s\n", p.name.c_str(), p.summary.c_str());
    std::printf("%14s model: --layers %d --width %d --heads %d --ctx %d --ff-ratio %g%s --pattern %s --stride %d",
                "", m.layers, m.width, m.heads, m.ctx, m.ff_ratio, m.half_qk ? " --half-qk" : "", m.pattern.c_str(),
                m.stride);
    if (m.pattern == "fixed") std::printf(" --summary %d --summary-blocks %d", m.summary, m.summary_blocks);
    std::printf(" --mode %s --dropout %g --pos-sizes %s\n", m.mode.c_str(), m.dropout, sizes.c_str());
    std::printf("%14s train: --batch %d --accumulate %d --steps %lld --lr %g --warmup %lld --weight-decay %g "
                "--beta1 %g --beta2 %g --eps %g --clip %g --eval-every %lld --eval-windows %lld --save-every %lld --ema %g "
                "--recompute %s\n",
                "", t.batch, t.accumulate, static_cast<long long>(t.steps), t.lr, static_cast<long long>(t.warmup),
                t.weight_decay, t.beta1, t.beta2, t.eps, t.clip, static_cast<long long>(t.eval_every),
                static_cast<long long>(t.eval_batches), static_cast<long long>(t.save_every), t.ema,
                t.recompute ? "true" : "false");
    std::printf("%14s data: --data-format %s; %.0f parameters\n", "", p.data_format.c_str(), parameter_count(m));
    if (!p.why.empty()) std::printf("%14s why: %s\n", "", p.why.c_str());
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
  std::printf("machine: %s %s, %s\n", name.sysname, name.machine, cpu_model().c_str());
  std::printf("cpu threads: %d (OMP_NUM_THREADS sets this), memory: %.1f GiB\n", num_threads(),
              static_cast<double>(physical_memory_bytes()) / (1024.0 * 1024.0 * 1024.0));
}

}  // namespace

void add_info_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("info", "Print the build (backends, version) and the machine");
  auto list_presets = std::make_shared<bool>(false);
  cmd->add_flag("--presets", *list_presets, "list the named configurations for --preset");
  cmd->callback([list_presets] { *list_presets ? print_presets() : run(); });
}

}  // namespace spt::cli
