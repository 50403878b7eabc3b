// The valid inputs every case mutates, made once per fuzz run: a byte file, IDX (plain
// and .gz) and CIFAR-10 directories, a checkpoint trained on each by the real `spt`
// binary, a --config file, and the gzip bombs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "files.h"
#include "runner.h"

namespace spt::fuzz {

constexpr int kIdxTrainImages = 24, kIdxTestImages = 4, kIdxSide = 8;
constexpr int kCifarPerBatch = 3, kCifarTestImages = 2;
constexpr int64_t kCifarRecord = 3073;
constexpr int64_t kTextCtx = 64;  // the tiny preset's context
constexpr int64_t kNpyImages = 24;  // 8x8 grey images in the base .npy (the IDX checkpoint's shape)

struct Base {
  std::string root;                      // the run's temporary directory
  std::string text;                      // bytes data set
  std::string text_run;                  // run directory holding checkpoint/ (tiny preset, 2 steps, --ema)
  int64_t text_step = 0;                 // its step
  std::string idx, idx_gz, cifar;        // data directories
  std::string idx_checkpoint, cifar_checkpoint;
  std::string config;                    // valid --config file (the tiny run's model and train)
  std::string bomb_bad, bomb_huge;       // IDX .gz: 1 GiB after a 24-image header; 256 MiB, honest
  std::string npy;                       // kNpyImages 8x8 grey images as (kNpyImages, 64) uint8
  std::string image_set;                 // that .npy prepared (`spt prepare`)
};

Base build_base(const std::string& root, const std::string& binary, const Limits& limits);

// The 16-byte IDX header (big-endian magic and three dimensions).
Bytes idx_header(uint32_t magic, int64_t count, int64_t rows, int64_t cols);
// A version 1.0 .npy of `data` with this header (numpy's padding).
Bytes npy_file(const std::string& descr, const std::string& order, const std::vector<int64_t>& shape, const Bytes& data);
// The IDX images file of `count` images of rows x cols pixels.
Bytes idx_file(uint32_t magic, int64_t count, int64_t rows, int64_t cols, uint64_t fill);

}  // namespace spt::fuzz
