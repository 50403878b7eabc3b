// `spt prepare`: recordings, images (or a text file) into a prepared data set directory
// that `spt train --data DIR` reads by memory-mapping (docs/DATA.md).
#include <cstdio>

#include "cli/commands.h"
#include "data/prepare.h"

namespace spt::cli {
namespace {

void print_image_summary(const PrepareOptions& o, const PrepareResult& r) {
  const ImageShape& s = r.index.image;
  std::printf("wrote %s: %dx%dx%d images (%lld tokens each), train %lld, valid %lld, test %lld images, %lld tokens\n",
              o.out.c_str(), s.height, s.width, s.channels, static_cast<long long>(s.tokens()),
              static_cast<long long>(r.index.images[0]), static_cast<long long>(r.index.images[1]),
              static_cast<long long>(r.index.images[2]), static_cast<long long>(r.index.total_tokens));
  std::printf("train with --ctx %lld --pos-sizes %d,%d,%d\n", static_cast<long long>(s.tokens()), s.height, s.width,
              s.channels);
  if (r.skipped > 0) std::printf("skipped %lld bad images (--skip-bad)\n", static_cast<long long>(r.skipped));
}

void print_summary(const PrepareOptions& o, const PrepareResult& r) {
  if (r.index.modality == "image") return print_image_summary(o, r);
  int64_t clips[3] = {0, 0, 0}, tokens[3] = {0, 0, 0};
  for (const PreparedClip& clip : r.index.clips) {
    ++clips[split_rank(clip.split)];
    tokens[split_rank(clip.split)] += clip.length;
  }
  std::printf("wrote %s: %s, %lld clips, %lld tokens (train %lld clips / %lld tokens, valid %lld / %lld, test %lld / %lld)\n",
              o.out.c_str(), r.index.modality == "audio" ? ("mu-law audio at " + std::to_string(o.sample_rate) + " Hz").c_str()
                                                         : "text bytes",
              static_cast<long long>(r.index.clips.size()), static_cast<long long>(r.index.total_tokens),
              static_cast<long long>(clips[0]), static_cast<long long>(tokens[0]), static_cast<long long>(clips[1]),
              static_cast<long long>(tokens[1]), static_cast<long long>(clips[2]), static_cast<long long>(tokens[2]));
  if (r.skipped > 0) std::printf("skipped %lld bad recordings (--skip-bad)\n", static_cast<long long>(r.skipped));
}

}  // namespace

void add_prepare_command(CLI::App& app) {
  CLI::App* cmd =
      app.add_subcommand("prepare", "Turn recordings, images (or a text file) into a prepared data set for training");
  auto o = std::make_shared<PrepareOptions>();
  cmd->add_option("source", o->source,
                  "a recording, a directory of recordings (.wav .flac .ogg .oga, recursive), a .txt list of them; "
                  "images: a directory of .npz/.npy arrays or of .png/.jpg files, a .tar of them, an .npz or .npy, an "
                  "IDX or CIFAR-10 directory; or the text file (--modality text)");
  cmd->add_option("--list", o->list_file, "a file naming one recording per line");
  cmd->add_option("--out", o->out, "the data set directory to write (tokens.bin, index.json)")->required();
  cmd->add_option("--modality", o->modality, "audio | text | image (default: image for an image source, else audio)");
  cmd->add_option("--sample-rate", o->sample_rate, "audio: resample every recording to this rate (Hz)");
  cmd->add_option("--seed", o->seed, "seed of the train/valid/test split of audio clips (images without train/val folders)");
  cmd->add_flag("--skip-bad", o->skip_bad, "skip recordings or image files that cannot be decoded and count them");
  cmd->add_flag("--force", o->force, "replace an existing prepared set in --out");
  cmd->footer("Examples: spt prepare recordings/ --sample-rate 12000 --out data/speech\n"
              "          spt prepare imagenet64_npz/ --out data/imagenet64");
  cmd->callback([o] { print_summary(*o, prepare_dataset(*o)); });
}

}  // namespace spt::cli
