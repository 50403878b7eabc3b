// Which gradients a data-parallel rank reduces while the backward still runs. The backward
// finishes the gradients from the end of the flat parameter buffer (head and ln_f first,
// then the blocks from the last, the embeddings last: model_param_table's order), so the
// final gradients are always a growing suffix [ready_from, n). Once at least a bucket of
// them waits unreduced, all that wait go as one bucket, cut at the shard boundaries
// (shard_range of every rank) into pieces whose sums go to the pieces' owners only: the
// data movement of a reduce-scatter, a bucket at a time, so it overlaps with the rest of
// the backward and leaves the same contiguous shards. Planning only: GradientReducer
// (dist/gradient_reducer.h) has the communicator move the data.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/communicator.h"

namespace spt::dist {

// Floats per bucket for a bucket size in MiB of fp32 gradients (--bucket-mib): at least one
// when mib > 0; 0 for 0 (no buckets: everything is reduced after the backward).
int64_t bucket_floats(double mib);

class BucketPlan {
 public:
  // n gradients over `world` ranks, buckets of at least `bucket` floats (>= 1).
  BucketPlan(int64_t n, int world, int64_t bucket);

  // A new backward: nothing is final, nothing reduced.
  void restart();
  // The gradients [ready_from, n) are final (ready_from only falls within a backward): the
  // pieces of the bucket to reduce now, or none while less than a bucket waits. A bucket
  // starts at a multiple of kShardAlignment, so every piece does; at ready_from 0 (the
  // backward is done) all that waits goes, however little.
  std::vector<ReducePiece> ready(int64_t ready_from);
  // The pieces of everything not reduced yet, [0, reduced_from()): the backward ended
  // without saying so.
  std::vector<ReducePiece> rest();
  // Gradients [reduced_from(), n) have gone in buckets.
  int64_t reduced_from() const { return reduced_from_; }
  int64_t size() const { return n_; }
  int64_t bucket() const { return bucket_; }

  // [begin, end) cut at the shard boundaries, each piece with its shard's rank as root.
  std::vector<ReducePiece> pieces(int64_t begin, int64_t end) const;

 private:
  int64_t n_;
  int world_;
  int64_t bucket_;
  int64_t ready_from_;
  int64_t reduced_from_;
};

}  // namespace spt::dist
