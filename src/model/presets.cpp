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

// One GPU, about 8 minutes of bf16 training. Validation scores the whole valid split
// (eval_windows 0: a few seconds for these sets) ten times, so RUN/best is chosen on the
// split and not on a sample of it; recomputation is off because these models fit an 80 GB
// GPU many times over, and skipping the recomputed forward is about a quarter of the step.
TrainConfig gpu_train(int batch, double lr, int64_t warmup, int64_t steps, double ema, double weight_decay) {
  TrainConfig t;
  t.batch = batch;
  t.lr = lr;
  t.warmup = warmup;
  t.steps = steps;
  t.ema = ema;
  t.weight_decay = weight_decay;
  t.eval_every = steps / 10;
  t.eval_batches = 0;
  t.save_every = steps / 2;
  t.recompute = false;
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

// The paper's setups (enwik8, CIFAR-10, ImageNet 64, raw audio), at the paper's sizes.
void add_paper_presets(std::vector<Preset>& all) {
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
}

// Small models that train on a laptop's CPU in minutes.
void add_cpu_presets(std::vector<Preset>& all) {
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
}

// GPU presets for the one-GPU results (docs/RESULTS.md), each about 470 s of training.
// Step counts from the measured enwik8 preset (docs/BENCHMARKS.md, H200, B 2): 30 layers
// of width 512 train at 372k (strided) and 301k (fixed) tokens/s with recomputation, 90
// and 111 ns per token and layer, about half of it width-squared matrix work, the rest
// LayerNorm/GELU/dropout and attention (linear in the width or less). Taken to an H100
// (slower memory: about x1.15), without recomputation (a quarter less matrix work) and at
// T 784-1024 (cheaper attention): about 85 ns per token and layer at width 512 and 55 ns
// at width 384 (matrix work x0.56, the rest x0.75). bench/image_results.sh and
// bench/text_results.sh measure the real rate over the first steps and re-fit --steps so
// that the cosine decay still ends inside the time. Head dim 64 everywhere: the
// tensor-core attention kernels' best case.
void add_gpu_presets(std::vector<Preset>& all) {
  {
    // 8 x 55 ns = 0.44 us a pixel: 2.3M pixels/s, 1.07B in 470 s; 20k steps of 64 images
    // are 1.0B pixels, 23 epochs of the 43M training pixels. MNIST is mostly zeros, so a
    // narrow model converges in few pixels (the published 0.621 is 8 layers of width 256
    // after 250 epochs); dropout 0.1 and the weight average keep 23 epochs from overfitting.
    Preset p{"mnist",
             "GPU, ~8 min on one H100: 8 layers, width 384, 6 heads, T 784 (28x28), strided l 28 (a row), "
             "dropout 0.1, EMA 0.999, batch 64, 20k steps",
             "idx", image_model(8, 384, 6, 28, 28, 1, 28), gpu_train(64, 1e-3, 500, 20000, 0.999, 0.01)};
    p.model.dropout = 0.1;
    p.why = "assumes 2.3M pixels/s on an H100 (55 ns per pixel and layer at width 384, scaled from the measured "
            "enwik8 preset): 20k steps x 64 images = 1.0B pixels, 23 epochs; a row stride is the image's own "
            "factorization (the row so far, the column above)";
    all.push_back(p);
  }
  {
    // Fashion holds five times MNIST's information per pixel, so capacity pays more than
    // epochs: 8 x 85 ns = 0.68 us a pixel, 1.5M pixels/s, 690M in 470 s; 13k steps are
    // 650M pixels, 15 epochs. Dropout 0.1 and the weight average against overfitting.
    Preset p{"fashion",
             "GPU, ~8 min on one H100: 8 layers, width 512, 8 heads, T 784 (28x28), strided l 28 (a row), "
             "dropout 0.1, EMA 0.999, batch 64, 13k steps",
             "idx", image_model(8, 512, 8, 28, 28, 1, 28), gpu_train(64, 8e-4, 500, 13000, 0.999, 0.01)};
    p.model.dropout = 0.1;
    p.why = "assumes 1.5M pixels/s on an H100 (85 ns per pixel and layer at width 512): 13k steps x 64 images "
            "= 650M pixels, 15 epochs";
    all.push_back(p);
  }
  {
    // 12 x 90 ns = 1.08 us a byte: 0.93M bytes/s, 436M in 470 s; 12k steps of 32 x 1024
    // are 393M bytes, about 100 epochs of KJV's 3.9 MB training split. So the model is
    // regularized as the paper's enwik8 model (dropout 0.4), with weight decay 0.1 and a
    // slow weight average, and RUN/best keeps the best validation. The fixed pattern of
    // enwik8 (l 128, c 32) over a T that spans a chapter's worth of verses.
    Preset p{"kjv",
             "GPU, ~8 min on one H100: 12 layers, width 512, 8 heads, T 1024, fixed l 128 c 32 merged, dropout 0.4, "
             "weight decay 0.1, EMA 0.9995, batch 32, 12k steps",
             "bytes", text_model(12, 512, 8, 1024, "fixed", 128, 32), gpu_train(32, 6e-4, 500, 12000, 0.9995, 0.1)};
    p.model.dropout = 0.4;
    p.why = "assumes 0.93M bytes/s on an H100 (90 ns per byte and layer): 12k steps x 32 x 1024 = 393M bytes, "
            "~100 epochs of 3.9 MB, hence dropout 0.4 and weight decay 0.1";
    all.push_back(p);
  }
  {
    // The same network on GCIDE's 36 MB training split: 393M bytes are 11 epochs, so it
    // needs less dropout than KJV.
    Preset p{"gcide",
             "GPU, ~8 min on one H100: 12 layers, width 512, 8 heads, T 1024, fixed l 128 c 32 merged, dropout 0.2, "
             "weight decay 0.1, EMA 0.9995, batch 32, 12k steps",
             "bytes", text_model(12, 512, 8, 1024, "fixed", 128, 32), gpu_train(32, 6e-4, 500, 12000, 0.9995, 0.1)};
    p.model.dropout = 0.2;
    p.why = "assumes 0.93M bytes/s on an H100: 12k steps x 32 x 1024 = 393M bytes, 11 epochs of 36 MB";
    all.push_back(p);
  }
}

std::vector<Preset> make_presets() {
  std::vector<Preset> all;
  add_paper_presets(all);
  add_cpu_presets(all);
  add_gpu_presets(all);
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
