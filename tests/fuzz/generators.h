// The mutation categories. Each generator writes one mutated input into case.dir and
// lists the spt commands that must handle it, with what each may answer (the oracle).
#pragma once

#include <string>
#include <vector>

#include "base.h"
#include "fuzz_case.h"

namespace spt::fuzz {

using Generator = void (*)(const Base& base, Rng& rng, int64_t index, Case& c);

struct Category {
  const char* name;
  int count;
  Generator make;
};

// Checkpoints (eval, sample and train --resume on each).
void checkpoint_bit_flips(const Base&, Rng&, int64_t, Case&);
void checkpoint_truncation(const Base&, Rng&, int64_t, Case&);
void checkpoint_forged_header(const Base&, Rng&, int64_t, Case&);
void checkpoint_forged_payload(const Base&, Rng&, int64_t, Case&);
void checkpoint_state_edit(const Base&, Rng&, int64_t, Case&);
void checkpoint_special_file(const Base&, Rng&, int64_t, Case&);
// Data sets (eval of a checkpoint of the matching shape on each).
void data_bytes(const Base&, Rng&, int64_t, Case&);
void data_idx(const Base&, Rng&, int64_t, Case&);
void data_idx_gz(const Base&, Rng&, int64_t, Case&);
void data_cifar(const Base&, Rng&, int64_t, Case&);
void data_special_file(const Base&, Rng&, int64_t, Case&);
// Images (prepare of a mutated .npy; eval of a prepared image set with a mutated index).
void data_npy(const Base&, Rng&, int64_t, Case&);
void data_image_index(const Base&, Rng&, int64_t, Case&);
// --config files (train one step from scratch).
void config_edit(const Base&, Rng&, int64_t, Case&);

int special_checkpoint_variants();
int special_data_variants();

// All categories in case-id order: case ids [0, count0) are the first category, and so on.
std::vector<Category> categories();

}  // namespace spt::fuzz
