#include "base.h"

#include <sys/wait.h>
#include <poll.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace spt::fuzz {
namespace {

namespace fs = std::filesystem;

// Runs the real binary and insists on success: the base inputs must be valid.
void run_spt(const std::string& binary, const std::vector<std::string>& args, const Limits& limits) {
  Limits generous = limits;
  generous.timeout_s = 120;
  Child child(args, binary, generous);
  for (;;) {
    pollfd p{child.fd(), POLLIN, 0};
    poll(&p, 1, 1000);
    if (!child.read_some()) break;
  }
  const RunResult r = child.finish(false);
  if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
    throw std::runtime_error("making the base inputs failed: spt " + args.front() + ": " + describe(r));
}

Bytes text_bytes(int64_t n) {
  Rng rng(7, 0);
  const std::string words[] = {"the ", "sparse ", "transformer ", "attends ", "to ", "a ", "few ", "blocks\n"};
  Bytes out;
  while (static_cast<int64_t>(out.size()) < n) {
    const std::string& w = words[rng.below(8)];
    out.insert(out.end(), w.begin(), w.end());
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

void make_idx(const Base& b) {
  fs::create_directories(b.idx);
  fs::create_directories(b.idx_gz);
  const Bytes train = idx_file(0x803, kIdxTrainImages, kIdxSide, kIdxSide, 1);
  const Bytes test = idx_file(0x803, kIdxTestImages, kIdxSide, kIdxSide, 2);
  write_file(b.idx + "/train-images-idx3-ubyte", train);
  write_file(b.idx + "/t10k-images-idx3-ubyte", test);
  write_file(b.idx_gz + "/train-images-idx3-ubyte.gz", gzip(train));
  write_file(b.idx_gz + "/t10k-images-idx3-ubyte.gz", gzip(test));
}

void make_cifar(const Base& b) {
  fs::create_directories(b.cifar);
  Rng rng(11, 0);
  const auto batch = [&](int images) {
    Bytes out(static_cast<size_t>(images * kCifarRecord));
    for (auto& v : out) v = static_cast<uint8_t>(rng.below(256));
    return out;
  };
  for (int k = 1; k <= 5; ++k) write_file(b.cifar + "/data_batch_" + std::to_string(k) + ".bin", batch(kCifarPerBatch));
  write_file(b.cifar + "/test_batch.bin", batch(kCifarTestImages));
}

void make_config(const Base& b) {
  const Bytes state = read_file(b.text_run + "/checkpoint/state.json");
  const nlohmann::json s = nlohmann::json::parse(state.begin(), state.end());
  const nlohmann::json config = {{"model", s["model"]}, {"train", s["train"]}};
  write_text(b.config, config.dump(2) + "\n");
}

}  // namespace

Bytes idx_header(uint32_t magic, int64_t count, int64_t rows, int64_t cols) {
  Bytes out(16);
  const uint32_t fields[4] = {magic, static_cast<uint32_t>(count), static_cast<uint32_t>(rows),
                              static_cast<uint32_t>(cols)};
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 4; ++i) out[4 * k + i] = static_cast<uint8_t>(fields[k] >> (24 - 8 * i));
  return out;
}

Bytes idx_file(uint32_t magic, int64_t count, int64_t rows, int64_t cols, uint64_t fill) {
  Bytes out = idx_header(magic, count, rows, cols);
  Rng rng(fill, 1);
  for (int64_t i = 0; i < count * rows * cols; ++i) out.push_back(static_cast<uint8_t>(rng.below(256)));
  return out;
}

Base build_base(const std::string& root, const std::string& binary, const Limits& limits) {
  Base b;
  b.root = root;
  b.text = root + "/text.txt";
  b.text_run = root + "/text-run";
  b.idx = root + "/idx";
  b.idx_gz = root + "/idx-gz";
  b.cifar = root + "/cifar";
  b.config = root + "/config.json";
  write_file(b.text, text_bytes(24000));
  make_idx(b);
  make_cifar(b);
  b.text_step = 2;
  run_spt(binary, {"train", "--preset", "tiny", "--steps", "2", "--eval-batches", "1", "--ema", "0.9", "--data",
                   b.text, "--out", b.text_run}, limits);
  run_spt(binary, {"train", "--layers", "1", "--width", "16", "--heads", "2", "--ctx", "64", "--stride", "8",
                   "--pos-sizes", "8,8,1", "--batch", "2", "--steps", "1", "--eval-batches", "1", "--data-format",
                   "idx", "--data", b.idx, "--out", root + "/idx-run"}, limits);
  run_spt(binary, {"train", "--layers", "1", "--width", "16", "--heads", "2", "--ctx", "3072", "--stride", "64",
                   "--pos-sizes", "32,32,3", "--batch", "1", "--steps", "1", "--eval-batches", "1", "--data-format",
                   "cifar10", "--data", b.cifar, "--out", root + "/cifar-run"}, limits);
  b.npy = root + "/images.npy";
  b.image_set = root + "/image-set";
  const Bytes pixels = idx_file(0x803, kNpyImages, kIdxSide, kIdxSide, 3);
  write_file(b.npy, npy_file("|u1", "False", {kNpyImages, kIdxSide * kIdxSide}, Bytes(pixels.begin() + 16, pixels.end())));
  run_spt(binary, {"prepare", b.npy, "--out", b.image_set}, limits);
  b.idx_checkpoint = root + "/idx-run/checkpoint";
  b.cifar_checkpoint = root + "/cifar-run/checkpoint";
  make_config(b);
  b.bomb_bad = root + "/bomb-bad.gz";
  b.bomb_huge = root + "/bomb-huge.gz";
  const int64_t gib = int64_t{1} << 30;
  // A bomb: 1 GiB of zeros after a header of 24 images. And a large but honest file: 256
  // MiB of zero images, as its header says (it fits the memory limit).
  write_gzip_bomb(b.bomb_bad, idx_header(0x803, kIdxTrainImages, kIdxSide, kIdxSide), gib);
  write_gzip_bomb(b.bomb_huge, idx_header(0x803, gib / 4 / 64, kIdxSide, kIdxSide), gib / 4);
  return b;
}

}  // namespace spt::fuzz
