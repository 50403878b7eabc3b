// `spt sample`: sequences from a checkpoint with a key/value cache, on the CPU or one GPU;
// text to stdout or a file, images as a PNG grid (optionally completing the first rows of
// test images).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/file_read.h"
#include "io/file_util.h"
#include "io/png.h"
#include "model/sampler.h"
#include "train/checkpoint.h"

namespace spt::cli {
namespace {

struct SampleFlags {
  std::string checkpoint;
  int count = 1;
  int64_t length = 0;
  float temperature = 1.0f;
  uint64_t seed = 1;
  std::string prompt, prompt_file;
  int prefix_rows = 0;
  std::string data_path, data_format;
  std::string out;
  std::string device = "cpu";
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void write_text(const SampleFlags& f, const std::vector<std::vector<uint8_t>>& samples) {
  std::string text;
  for (size_t s = 0; s < samples.size(); ++s) {
    if (samples.size() > 1) text += "----- sample " + std::to_string(s + 1) + " -----\n";
    text.append(samples[s].begin(), samples[s].end());
    text += "\n";
  }
  if (f.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return;
  }
  write_file_atomically(f.out, [&](OutputFile& out) { out.write(text.data(), static_cast<int64_t>(text.size())); });
  std::printf("wrote %zu samples to %s\n", samples.size(), f.out.c_str());
}

void run(const SampleFlags& f) {
  if (!f.out.empty()) refuse_checkpoint_overwrite(f.out, "--out");
  const CheckpointInfo info = read_checkpoint_info(f.checkpoint);
  Model model(info.model);
  load_checkpoint(f.checkpoint, model, nullptr);
  const ModelConfig& c = info.model;
  const bool images = c.pos_sizes.size() == 3;
  SampleOptions options;
  options.count = f.count;
  options.length = f.length;
  options.temperature = f.temperature;
  options.seed = f.seed;
  options.device = f.device;
  SPT_CHECK(f.prompt.empty() || f.prompt_file.empty(), "give --prompt or --prompt-file, not both");
  if (!f.prompt.empty()) options.prefixes.push_back({f.prompt.begin(), f.prompt.end()});
  if (!f.prompt_file.empty()) options.prefixes.push_back(read_file_bytes(f.prompt_file));
  if (f.prefix_rows > 0) {
    SPT_CHECK(images, "--prefix-rows completes images; this model is not an image model (pos_sizes has ",
              c.pos_sizes.size(), " tables)");
    SPT_CHECK(f.prefix_rows < c.pos_sizes[0], "--prefix-rows ", f.prefix_rows, " must be below the image height ",
              c.pos_sizes[0]);
    const std::string path = f.data_path.empty() ? info.state.data_path : f.data_path;
    std::string format = f.data_format.empty() ? info.state.data_format : f.data_format;
    if (format.empty()) format = "bytes";
    SPT_CHECK(!path.empty(), "'", f.checkpoint, "' holds weights only (no state.json names the data set): give ",
              "--data FILE for --prefix-rows");
    const Dataset data = load_dataset(format, path);
    check_model_fits(data, c);
    SPT_CHECK(data.test.records() >= f.count, "the test split has ", data.test.records(), " images, fewer than --count ",
              f.count);
    const int64_t row_tokens = int64_t{c.pos_sizes[1]} * c.pos_sizes[2];
    for (int s = 0; s < f.count; ++s) {
      const uint8_t* image = data.test.tokens.data() + s * data.test.record_size;
      options.prefixes.emplace_back(image, image + f.prefix_rows * row_tokens);
    }
  }
  const auto samples = sample(model, options);
  if (images && ends_with(f.out, ".png")) {
    const int64_t T = c.ctx;
    for (const auto& s : samples)
      SPT_CHECK(static_cast<int64_t>(s.size()) == T, "an image sample needs the whole context (--length ", T, ")");
    SPT_CHECK(c.pos_sizes[2] == 1 || c.pos_sizes[2] == 3, "PNG output needs 1 or 3 channels, the model has ",
              c.pos_sizes[2]);
    std::vector<Image> images;
    for (const auto& s : samples) images.push_back({c.pos_sizes[1], c.pos_sizes[0], c.pos_sizes[2], s});
    write_png(f.out, image_grid(images));
    std::printf("wrote %d images to %s\n", f.count, f.out.c_str());
    return;
  }
  SPT_CHECK(!ends_with(f.out, ".png"), "PNG output needs an image model; use a .txt --out for text");
  write_text(f, samples);
}

}  // namespace

void add_sample_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("sample", "Sample sequences from a checkpoint (text, or a PNG grid of images)");
  auto f = std::make_shared<SampleFlags>();
  cmd->add_option("--checkpoint", f->checkpoint, "checkpoint directory (RUN/checkpoint), run directory, or model.safetensors alone")->required();
  cmd->add_option("--count", f->count, "sequences to sample");
  cmd->add_option("--length", f->length, "tokens per sequence, prompt included (default: the context)");
  cmd->add_option("--temperature", f->temperature, "softmax temperature (0: most likely token)");
  cmd->add_option("--seed", f->seed, "random seed");
  cmd->add_option("--prompt", f->prompt, "text the samples start with");
  cmd->add_option("--prompt-file", f->prompt_file, "file whose bytes the samples start with");
  cmd->add_option("--prefix-rows", f->prefix_rows, "images: keep the first N rows of test images and complete them");
  cmd->add_option("--data", f->data_path, "data set for --prefix-rows (default: the checkpoint's)");
  cmd->add_option("--data-format", f->data_format, "bytes | idx | cifar10 (default: the checkpoint's)");
  cmd->add_option("--out", f->out, "output file: .png for images, otherwise text (default: stdout)");
  cmd->add_option("--device", f->device, "cpu | cuda (the GPU decodes in fp32 with its key/value cache on the device)");
  cmd->callback([f] { run(*f); });
}

}  // namespace spt::cli
