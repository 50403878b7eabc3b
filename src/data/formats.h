// The loaders behind load_dataset, one per format (see dataset.h for the formats).
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace spt {

Dataset load_bytes(const std::string& path);
Dataset load_idx(const std::string& directory);
Dataset load_cifar10(const std::string& directory);
Dataset load_prepared(const std::string& directory);

// The enwik8 rule for a stream of n tokens: train = [0, train_end), valid =
// [train_end, valid_end), test = [valid_end, n), with train_end = floor(0.9 n) and
// valid_end = floor(0.95 n) computed exactly in integers.
struct StreamSplit {
  int64_t train_end = 0;
  int64_t valid_end = 0;
};
StreamSplit enwik8_split(int64_t n);

// Training images held out for validation: 5,000 (the paper's and the usual MNIST /
// CIFAR-10 choice), or 1/12 of a smaller training set so that small files still give
// all three splits (60,000 / 12 is exactly 5,000, so both rules meet at the real sets).
int64_t validation_images(int64_t training_images);

// Moves the last validation_images(train.records()) records of `train` into `valid`.
// `source` names the training file(s) in the error for a set too small to split.
void hold_out_validation(TokenSplit& train, TokenSplit& valid, const std::string& source);

}  // namespace spt
