#include "model/presets.h"

#include "core/error.h"

namespace spt {
namespace {

ModelConfig text_model(int layers, int width, int heads, int ctx, const std::string& pattern, int stride, int summary) {
  ModelConfig m;
  m.layers = layers;
  m.width = width;
  m.heads = heads;
  m.ctx = ctx;
  m.pattern = pattern;
  m.stride = stride;
  m.summary = summary;
  m.pos_sizes = text_pos_sizes(ctx, stride);
  return m;
}

ModelConfig image_model(int layers, int width, int heads, int rows, int cols, int channels, int stride) {
  ModelConfig m;
  m.layers = layers;
  m.width = width;
  m.heads = heads;
  m.ctx = rows * cols * channels;
  m.pattern = "strided";
  m.stride = stride;
  m.pos_sizes = {rows, cols, channels};
  return m;
}

TrainConfig paper_train(double lr) {
  TrainConfig t;
  t.lr = lr;
  t.warmup = 5000;
  t.steps = 500000;
  t.batch = 1;
  t.eval_every = 5000;
  t.save_every = 1000;
  return t;
}

// The CPU presets' training: warmup 50, validation and a checkpoint every `every` steps.
TrainConfig cpu_train(int batch, double lr, int64_t steps, int64_t every, int64_t eval_batches) {
  TrainConfig t;
  t.batch = batch;
  t.lr = lr;
  t.warmup = 50;
  t.steps = steps;
  t.eval_every = every;
  t.eval_batches = eval_batches;
  t.save_every = every;
  return t;
}

Preset audio_preset(const std::string& name, int layers, int width, int heads, int ctx, int stride,
                    const std::string& params) {
  Preset p{name,
           message("paper's raw audio: T ", ctx, " mu-law samples at 12 kHz, strided l ", stride, "; ", layers,
                   " layers, width ", width, ", ", heads, " heads (", params, ")"),
           "prepared", text_model(layers, width, heads, ctx, "strided", stride, 32), paper_train(3.5e-4)};
  p.model.sample_rate = 12000;
  return p;
}

std::vector<Preset> make_presets() {
  std::vector<Preset> all;
  {
    Preset p{"enwik8", "paper: 30 layers, width 512, 8 heads, T 12288, fixed l 128 c 32 merged, dropout 0.4", "bytes",
             text_model(30, 512, 8, 12288, "fixed", 128, 32), paper_train(3.5e-4)};
    p.model.dropout = 0.4;
    all.push_back(p);
  }
  {
    Preset p{"cifar10", "paper: 128 layers, width 256, 2 heads, T 3072, strided l 96, half-size ff and q/k, dropout 0.25",
             "cifar10", image_model(128, 256, 2, 32, 32, 3, 96), paper_train(3.5e-4)};
    p.model.ff_ratio = 2.0;
    p.model.half_qk = true;
    p.model.dropout = 0.25;
    all.push_back(p);
  }
  {
    // The data is the downsampled ImageNet arrays after `spt prepare` (docs/DATA.md).
    Preset p{"imagenet64", "paper: 48 layers, width 512, 16 heads, T 12288 (64x64x3), strided l 128, dropout 0.01",
             "prepared", image_model(48, 512, 16, 64, 64, 3, 128), paper_train(3.5e-4)};
    p.model.dropout = 0.01;
    all.push_back(p);
  }
  // The paper's three raw-audio models (8-bit mu-law at 12 kHz): the parameter count falls
  // as the context grows (152M at 65,536 samples, 25M at 262,144, 3M at 1,048,576). The
  // paper does not give their shapes; these match its counts with 12 L C^2 weights per
  // stack, head dim 64 (the tensor-core kernels' best case), stride l = sqrt(T) so that
  // both factors of the strided pattern hold about sqrt(T) keys.
  all.push_back(audio_preset("audio-65k", 48, 512, 8, 65536, 256, "152M"));
  all.push_back(audio_preset("audio-262k", 32, 256, 4, 262144, 512, "25M"));
  all.push_back(audio_preset("audio-1m", 14, 128, 2, 1048576, 1024, "3M"));
  {
    // Speech on the CPU (tools/quickstart.sh audio): about 10 minutes on 2 cores.
    Preset p{"audio-small", "CPU: 3 layers, width 128, 2 heads, T 1024 mu-law samples at 8 kHz, strided l 32",
             "prepared", text_model(3, 128, 2, 1024, "strided", 32, 8), cpu_train(8, 2e-3, 1500, 500, 64)};
    p.model.sample_rate = 8000;
    all.push_back(p);
  }
  {
    Preset p{"kjv-small", "CPU: 2 layers, width 128, 4 heads, T 256, fixed l 16 c 4 merged, on a byte file", "bytes",
             text_model(2, 128, 4, 256, "fixed", 16, 4), cpu_train(32, 3e-3, 1600, 400, 40)};
    all.push_back(p);
  }
  {
    Preset p{"fashion-small", "CPU: 4 layers, width 128, 4 heads, T 784 (28x28), strided l 28, on IDX images", "idx",
             image_model(4, 128, 4, 28, 28, 1, 28), cpu_train(8, 3e-3, 700, 350, 100)};
    all.push_back(p);
  }
  {
    Preset p{"tiny", "smoke test: 2 layers, width 32, 2 heads, T 64, strided l 8", "bytes",
             text_model(2, 32, 2, 64, "strided", 8, 2), TrainConfig{}};
    p.train.batch = 4;
    p.train.steps = 50;
    p.train.warmup = 5;
    p.train.eval_every = 25;
    p.train.save_every = 25;
    all.push_back(p);
  }
  return all;
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = make_presets();
  return all;
}

const Preset& find_preset(const std::string& name) {
  std::string names;
  for (const Preset& p : presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  throw Error(message("unknown preset '", name, "': use one of ", names));
}

}  // namespace spt
