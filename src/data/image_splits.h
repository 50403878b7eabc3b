// How `spt prepare` splits a source of images (one rule for array files, folders and
// tar archives). Each image carries a tag from its file or folder name: train (a name
// that is "train" or starts with "train" followed by '_', '-', '.' or a digit), val
// ("val", "valid", "validation", likewise) or test ("test"). Then:
//   - fewer than two different tags (none at all, or every image under one train
//     folder or in one file): a seeded split by image, as audio splits clips
//     (assign_splits: valid and test get max(1, floor(n / 20)) each, train the rest);
//   - train and val and test: each to its split;
//   - train and one of val / test: that one is the test split, and the last
//     validation_images(n_train) training images (data/formats.h: 5,000 for the real
//     sets) are held out as the valid split, as the IDX and CIFAR-10 loaders do;
//   - an untagged image beside tagged ones, or no train images: an error naming one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace spt {

enum class ImageTag : uint8_t { none, train, val, test };

// The tag of a file or folder name (its last extension ignored).
ImageTag image_tag(const std::string& name);

// The split rank (0 train, 1 valid, 2 test; data/prepared_index.h) of each image, in
// order; name_of(k) names image k in errors.
std::vector<uint8_t> plan_image_splits(const std::vector<ImageTag>& tags, uint64_t seed,
                                       const std::function<std::string(int64_t)>& name_of);

// Orders names with runs of digits compared as numbers ("batch_2" before "batch_10").
bool natural_less(const std::string& a, const std::string& b);

}  // namespace spt
