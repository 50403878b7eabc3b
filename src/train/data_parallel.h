// What the training loop does differently on the ranks of a data-parallel job
// (dist/communicator.h): rank 0 alone reads the checkpoint, writes files and prints, and
// hands the run to the others; every rank draws its own windows of a global batch that
// depends on the seed and the global step only, so a run resumes on any rank count.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "dist/communicator.h"
#include "model/config.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

namespace spt {

// Rank 0's model and training configs and training state on every rank (fields the
// others need to take the same steps and decisions).
void share_run_setup(dist::Communicator& comm, ModelConfig& model, TrainConfig& train, TrainState& state);

// Rank 0's weights, optimizer step count and weight average on every rank, and rank 0's
// whole AdamW moments cut into the ranks' shards: afterwards each rank's optimizer keeps
// the moments of its dist::shard_range only (rank 0's whole moments are freed). The other
// ranks' optimizers may start empty. A world of one keeps everything as it is.
void share_weights(dist::Communicator& comm, Model& model, OptimizerState& optimizer);

// save_checkpoint (train/checkpoint.h) by rank 0 with the whole moments, the ranks' shards
// gathered there for the save only. A collective: every rank calls it, the others write
// nothing. A world of one saves its state as it is.
void save_gathered_checkpoint(dist::Communicator& comm, const std::string& dir, const Model& model,
                              OptimizerState& optimizer, const TrainConfig& train, const TrainState& state);

// Global step draw `draw` (step * accumulate + micro-batch) holds world * B windows,
// window i drawn as training_batch draws it (data/dataset.h); rank r trains on windows
// [r * B, (r + 1) * B). One rank of batch world * B sees the same windows. tokens: (B, T);
// scratch: reused between calls.
void rank_batch(const TokenSplit& split, int64_t T, int B, uint64_t seed, int64_t draw, const dist::Communicator& comm,
                uint8_t* tokens, std::vector<uint8_t>& scratch);

// Each flag becomes true on every rank when it is true on any, in one collective (a stop
// asked on one rank stops all at the same step).
void any_rank(dist::Communicator& comm, std::initializer_list<bool*> flags);

}  // namespace spt
