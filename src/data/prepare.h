// `spt prepare` without the command line: recordings, images (or one text file) into a
// prepared data set (data/prepared_writer.h).
//   Audio: each recording is decoded, mixed to mono, resampled to sample_rate and
//   mu-law encoded (data/audio_tokens.h) as one clip. Whole clips are split: valid and
//   test get max(1, floor(n / 20)) clips each, train the rest, chosen by a permutation
//   of the sorted sources drawn from `seed`; fewer than 3 recordings is an error.
//   Text: one file as one stream, cut by the enwik8 rule (data/formats.h).
//   Images: .npz / .npy arrays, folders or tar archives of PNG / JPEG files, IDX and
//   CIFAR-10 directories (data/prepare_images.cpp), split by data/image_splits.h.
// Without a modality it is detected from the source: image for a .npz, .npy, .tar,
// .png, .jpg or .jpeg file, and for a directory that holds an IDX or CIFAR-10 set or
// any such file (searched recursively); audio otherwise. Text is never guessed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/prepared_index.h"

namespace spt {

struct PrepareOptions {
  std::string modality;            // audio | text | image; empty: detected from the source
  std::string source;              // a recording, a directory of them, a list file or a text file
  std::string list_file;           // a list of recordings, one path per line
  std::string out;                 // the data set directory
  int sample_rate = 12000;
  uint64_t seed = 1;
  bool skip_bad = false;           // skip recordings (image files) that cannot be decoded, and count them
  bool force = false;              // replace an existing prepared set
  bool progress = true;            // a progress line on stderr
};

struct PrepareResult {
  PreparedIndex index;
  int64_t skipped = 0;  // bad recordings or image files skipped (skip_bad)
};

// The recordings of a source: itself when it is an audio file; the files under a
// directory, recursively, whose extension is wav, flac, ogg or oga in any case, sorted
// by path; or the lines of a list file (a .txt source or --list): one path per line,
// relative paths taken from the list's directory, blank lines and lines starting with
// '#' ignored.
std::vector<std::string> audio_sources(const std::string& source, const std::string& list_file);

// The split of each of n clips ("train" | "valid" | "test"), a pure function of (n, seed).
std::vector<std::string> assign_splits(int64_t n, uint64_t seed);

// True when `source` would be prepared as images (the detection rule above).
bool is_image_source(const std::string& source);

// The modality prepare_dataset uses: options.modality, or the detected one.
std::string prepare_modality(const PrepareOptions& options);

PrepareResult prepare_images(const PrepareOptions& options);
PrepareResult prepare_dataset(const PrepareOptions& options);

}  // namespace spt
