// `spt sample`: sequences from a checkpoint with a key/value cache, on the CPU or one GPU;
// text to stdout (streamed as it is drawn) or a file, images as a PNG grid (optionally
// completing the first rows of test images), raw bytes for any model. A progress line shows
// on a terminal; Ctrl-C stops within a position (exit 130).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/sample_output.h"
#include "cli/sample_audio.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/file_read.h"
#include "io/image_samples.h"
#include "model/sampler.h"
#include "train/checkpoint.h"
#include "train/progress.h"
#include "train/stop_signal.h"

namespace spt::cli {
namespace {

struct SampleFlags {
  std::string checkpoint;
  int count = 1;
  int64_t length = 0;
  int64_t keep = 0;
  float temperature = 1.0f;
  int top_k = kVocab;
  float top_p = 1.0f;
  uint64_t seed = 1;
  std::string prompt, prompt_file;
  int prefix_rows = 0;
  int scale = 0;
  std::string data_path, data_format;
  std::string out;
  std::string device = "cpu";
  std::string prompt_audio;
  double prompt_seconds = 1.0;
  bool concat = false;
  bool raw_weights = false;
};

// The first `count` test images, whose first prefix_rows rows the samples keep.
std::vector<Image> test_images(const SampleFlags& f, const CheckpointInfo& info) {
  const ModelConfig& c = info.model;
  SPT_CHECK(f.prefix_rows < c.pos_sizes[0], "--prefix-rows ", f.prefix_rows, " must be below the image height ",
            c.pos_sizes[0]);
  const std::string path = f.data_path.empty() ? info.state.data_path : f.data_path;
  SPT_CHECK(!path.empty(), "'", f.checkpoint, "' holds weights only (no state.json names the data set): give ",
            "--data DIR for --prefix-rows");
  const std::string format = f.data_format.empty() ? info.state.data_format : f.data_format;
  const Dataset data = load_dataset(format, path);
  check_model_fits(data, c);
  SPT_CHECK(data.test.records() >= f.count, "the test split has ", data.test.records(), " images, fewer than --count ",
            f.count);
  std::vector<Image> originals;
  for (int s = 0; s < f.count; ++s) {
    const uint8_t* image = data.test.data() + s * data.test.record_size;
    originals.push_back({c.pos_sizes[1], c.pos_sizes[0], c.pos_sizes[2],
                         std::vector<uint8_t>(image, image + data.test.record_size)});
  }
  return originals;
}

void write_png_samples(const SampleFlags& f, const ModelConfig& c, const std::vector<std::vector<uint8_t>>& samples,
                       const std::vector<Image>& originals) {
  for (const auto& s : samples)
    SPT_CHECK(static_cast<int64_t>(s.size()) == c.ctx, "an image sample needs the whole context (--length ", c.ctx, ")");
  SPT_CHECK(c.pos_sizes[2] == 1 || c.pos_sizes[2] == 3, "PNG output needs 1 or 3 channels, the model has ",
            c.pos_sizes[2]);
  ImageSamples images;
  for (const auto& s : samples) images.samples.push_back({c.pos_sizes[1], c.pos_sizes[0], c.pos_sizes[2], s});
  images.originals = originals;
  images.prefix_rows = f.prefix_rows;
  write_png(f.out, sample_grid(images, f.scale));
  std::printf("wrote %d images to %s\n", f.count, f.out.c_str());
}

// A prompt longer than the context keeps its last T - 1 tokens: all the context the first
// drawn token can see. The sample starts with that part.
void keep_prompt_tail(std::vector<uint8_t>& prompt, int64_t context) {
  const int64_t kept = std::max<int64_t>(context - 1, 0);
  if (static_cast<int64_t>(prompt.size()) <= kept) return;
  std::fprintf(stderr, "spt sample: the prompt has %zu tokens, more than the context of %lld holds: keeping its last %lld\n",
               prompt.size(), static_cast<long long>(context), static_cast<long long>(kept));
  prompt.erase(prompt.begin(), prompt.end() - kept);
}

// The drawing options of the flags, with the prompt (text, file or audio) as the prefix.
SampleOptions prompted_options(const SampleFlags& f, const ModelConfig& c) {
  SampleOptions options;
  options.count = f.count;
  options.length = f.length;
  options.keep = f.keep;
  options.temperature = f.temperature;
  options.top_k = f.top_k;
  options.top_p = f.top_p;
  options.seed = f.seed;
  options.device = f.device;
  SPT_CHECK(f.prompt.empty() + f.prompt_file.empty() + f.prompt_audio.empty() >= 2,
            "give one of --prompt, --prompt-file and --prompt-audio");
  if (!f.prompt.empty()) options.prefixes.push_back({f.prompt.begin(), f.prompt.end()});
  if (!f.prompt_file.empty()) options.prefixes.push_back(read_file_bytes(f.prompt_file));
  if (!f.prompt_audio.empty()) options.prefixes.push_back(audio_prompt_tokens(c, f.prompt_audio, f.prompt_seconds));
  for (std::vector<uint8_t>& prompt : options.prefixes) keep_prompt_tail(prompt, c.ctx);
  return options;
}

// Writes finished samples (not streamed ones) to --out in its format.
void write_samples(const SampleFlags& f, const ModelConfig& c, SampleFormat format,
                   const std::vector<std::vector<uint8_t>>& samples, const std::vector<Image>& originals) {
  if (format == SampleFormat::png) {
    write_png_samples(f, c, samples, originals);
  } else if (format == SampleFormat::wav) {
    const auto paths = write_wav_samples(c, f.out, samples, f.concat);
    std::printf("wrote %zu samples at %d Hz to %s%s\n", samples.size(), c.sample_rate, paths.front().c_str(),
                paths.size() > 1 ? (" ... " + paths.back()).c_str() : "");
  } else if (format == SampleFormat::raw) {
    write_raw_samples(f.out, samples);
  } else {
    write_text_samples(f.out, samples);
  }
}

void run(const SampleFlags& f) {
  SPT_CHECK(f.count >= 1, "--count ", f.count, " must be at least 1");
  SPT_CHECK(f.length >= 0, "--length ", f.length, " must not be negative (0: the model context)");
  SPT_CHECK(f.scale >= 0, "--scale ", f.scale, " must be at least 1 (0: automatic)");
  validate(DrawOptions{f.temperature, f.top_k, f.top_p});
  if (!f.out.empty()) refuse_checkpoint_overwrite(f.out, "--out");
  const CheckpointInfo info = read_checkpoint_info(f.checkpoint);
  const ModelConfig& c = info.model;
  const bool images = c.pos_sizes.size() == 3;
  const SampleFormat format =
      sample_format_for(f.out, images ? SampleModality::image : c.sample_rate > 0 ? SampleModality::audio : SampleModality::text,
                        isatty(STDOUT_FILENO) != 0);
  SPT_CHECK(f.scale == 0 || format == SampleFormat::png, "--scale applies to PNG grids (--out x.png)");
  SPT_CHECK(f.prefix_rows == 0 || images, "--prefix-rows completes images; this model is not an image model (pos_sizes has ",
            c.pos_sizes.size(), " tables)");
  SampleOptions options = prompted_options(f, c);
  SPT_CHECK(!f.concat || format == SampleFormat::wav, "--concat joins WAV samples into one file; give --out NAME.wav");
  std::vector<Image> originals;
  if (f.prefix_rows > 0) {
    originals = test_images(f, info);
    const int64_t row_tokens = int64_t{c.pos_sizes[1]} * c.pos_sizes[2];
    for (const Image& image : originals)
      options.prefixes.emplace_back(image.pixels.begin(), image.pixels.begin() + f.prefix_rows * row_tokens);
  }
  Model model(info.model);
  const LoadedWeights weights = load_weights(f.checkpoint, model, !f.raw_weights);
  // One text sequence to stdout is printed as it is drawn; anything else is written at the end.
  const bool stream = format == SampleFormat::text && f.out.empty() && f.count == 1;
  const int64_t length = f.length > 0 ? f.length : c.ctx;
  const StopSignals signals;
  PhaseProgress progress("sampling", length, "tokens");
  options.on_position = [&](int64_t t, const std::vector<uint8_t>& tokens) {
    if (stream) {
      std::fputc(tokens[0], stdout);
      std::fflush(stdout);
    } else {
      progress.update(t + 1);
    }
    return !signals.requested();
  };
  options.on_reprime_step = [&] { return !signals.requested(); };
  const auto start = std::chrono::steady_clock::now();
  const auto samples = sample(model, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.finish();
  if (signals.requested()) {
    if (stream) std::fputc('\n', stdout);
    std::fflush(stdout);
    std::fprintf(stderr, "spt sample: interrupted at position %zu of %lld; %s\n", samples[0].size(),
                 static_cast<long long>(length), stream ? "the text so far is above" : "nothing written");
    throw CLI::RuntimeError(kInterruptedExitCode);
  }
  if (stream) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  } else {
    write_samples(f, c, format, samples, originals);
  }
  // The rate goes to stderr, so that it never mixes with samples written to stdout.
  std::fprintf(stderr, "spt sample: %d x %lld tokens in %.2f s on %s: %.1f tokens/s (%s, %s)\n", f.count,
               static_cast<long long>(length), seconds, f.device.c_str(), f.count * length / std::max(seconds, 1e-9),
               weights.average ? "weight average" : "trained weights", weights.file.c_str());
}

}  // namespace

void add_sample_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("sample", "Sample sequences from a checkpoint (text, or a PNG grid of images)");
  auto f = std::make_shared<SampleFlags>();
  cmd->add_option("--checkpoint", f->checkpoint,
                  "checkpoint directory (RUN/checkpoint, RUN/best), run directory (its latest checkpoint), or a .safetensors "
                  "file alone (model.safetensors, model_ema.safetensors)")->required();
  cmd->add_flag("--raw-weights", f->raw_weights,
                "sample the trained weights even when the checkpoint holds a weight average (--ema; used by default)");
  cmd->add_option("--count", f->count, "sequences to sample (at least 1)");
  cmd->add_option("--length", f->length,
                  "tokens per sequence, prompt included (0, the default: the context T). Text and audio models go "
                  "past T by sliding the window (see --keep); image models sample one image, at most T");
  cmd->add_option("--keep", f->keep,
                  "past the context: tokens of a full window that the next window starts with, 1..T-1 (0, the "
                  "default: T/2). Positions restart at 0 in each window, as in training; each slide re-runs these "
                  "tokens through the decoder, so a larger value gives more context and costs more steps per token. "
                  "A prompt longer than T keeps its last T-1 tokens");
  cmd->add_option("--temperature", f->temperature, "softmax temperature (0: most likely token)");
  cmd->add_option("--top-k", f->top_k, "draw only among the K most likely tokens, 1..256 (256: all)");
  cmd->add_option("--top-p", f->top_p,
                  "draw only among the most likely tokens whose probabilities sum to P, 0 < P <= 1 (1: all); "
                  "applied in this order: temperature, top-k, top-p, then the draw");
  cmd->add_option("--seed", f->seed, "random seed (the same seed and flags give the same samples)");
  cmd->add_option("--prompt", f->prompt, "text the samples start with");
  cmd->add_option("--prompt-file", f->prompt_file, "file whose bytes the samples start with");
  cmd->add_option("--prefix-rows", f->prefix_rows,
                  "images: keep the first N rows of test images and complete them; the PNG shows each test image "
                  "left of its completion, with red ticks in the margins at the last given row");
  cmd->add_option("--data", f->data_path, "data set for --prefix-rows (default: the checkpoint's)");
  cmd->add_option("--data-format", f->data_format, "bytes | idx | cifar10 | prepared (default: the checkpoint's)");
  cmd->add_option("--scale", f->scale,
                  "PNG grids: enlarge every pixel N times (nearest neighbour; default: the smallest N that makes "
                  "the grid at least 512 pixels on its longer side)");
  cmd->add_option("--out", f->out,
                  "output file, format by extension: .png (image models: a grid), .raw or .bin (the bytes, nothing "
                  "else), .txt or .text (text models), .wav (audio models; one file per sample, NAME-1.wav, ..., unless --concat); default: stdout (text streams as it is drawn; image bytes only "
                  "when stdout is not a terminal)");
  cmd->add_option("--prompt-audio", f->prompt_audio, "audio models: a recording whose first seconds start the samples");
  cmd->add_option("--prompt-seconds", f->prompt_seconds, "audio models: seconds of --prompt-audio to keep");
  cmd->add_flag("--concat", f->concat, "audio models: all samples into the one --out WAV (else NAME-1.wav, ...)");
  cmd->add_option("--device", f->device, "cpu | cuda (the GPU decodes in fp32 with its key/value cache on the device)");
  cmd->callback([f] { run(*f); });
}

}  // namespace spt::cli
