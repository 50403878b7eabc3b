// The loaders behind load_dataset, one per format (see dataset.h for the formats).
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace spt {

Dataset load_bytes(const std::string& path);
Dataset load_idx(const std::string& directory);
Dataset load_cifar10(const std::string& directory);

// Training images held out for validation: 5,000 (the paper's and the usual MNIST /
// CIFAR-10 choice), or 1/12 of a smaller training set so that small files still give
// all three splits (60,000 / 12 is exactly 5,000, so both rules meet at the real sets).
int64_t validation_images(int64_t training_images);

// Moves the last validation_images(train.records()) records of `train` into `valid`.
// `source` names the training file(s) in the error for a set too small to split.
void hold_out_validation(TokenSplit& train, TokenSplit& valid, const std::string& source);

}  // namespace spt
