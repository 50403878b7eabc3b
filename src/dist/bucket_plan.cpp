#include "dist/bucket_plan.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace spt::dist {

int64_t bucket_floats(double mib) {
  SPT_CHECK(std::isfinite(mib) && mib >= 0, "gradient bucket size ", mib,
            " MiB must be a non-negative number (--bucket-mib; 0 reduces the gradients after the backward)");
  const double floats = std::ceil(mib * (1 << 20) / sizeof(float));
  // Larger than any buffer: one bucket at the end of the backward.
  constexpr double kUnbounded = 1e18;
  return floats >= kUnbounded ? static_cast<int64_t>(kUnbounded) : static_cast<int64_t>(floats);
}

BucketPlan::BucketPlan(int64_t n, int world, int64_t bucket) : n_(n), world_(world), bucket_(bucket) {
  SPT_CHECK(n >= 0 && world >= 1 && bucket >= 1, "gradient buckets of ", bucket, " floats over ", n,
            " parameters and ", world, " ranks are undefined: buckets need at least one float");
  restart();
}

void BucketPlan::restart() {
  ready_from_ = n_;
  reduced_from_ = n_;
}

std::vector<ReducePiece> BucketPlan::ready(int64_t ready_from) {
  SPT_CHECK(0 <= ready_from && ready_from <= ready_from_, "gradients final from ", ready_from, " after ", ready_from_,
            ": the backward finishes a growing suffix of the ", n_, " gradients");
  ready_from_ = ready_from;
  const int64_t begin =
      ready_from == 0 ? 0 : (ready_from + kShardAlignment - 1) / kShardAlignment * kShardAlignment;
  if (begin >= reduced_from_ || (ready_from > 0 && reduced_from_ - begin < bucket_)) return {};
  std::vector<ReducePiece> bucket = pieces(begin, reduced_from_);
  reduced_from_ = begin;
  return bucket;
}

std::vector<ReducePiece> BucketPlan::rest() {
  std::vector<ReducePiece> bucket = pieces(0, reduced_from_);
  ready_from_ = 0;
  reduced_from_ = 0;
  return bucket;
}

std::vector<ReducePiece> BucketPlan::pieces(int64_t begin, int64_t end) const {
  std::vector<ReducePiece> out;
  for (int r = 0; r < world_; ++r) {
    const ShardRange shard = shard_range(n_, world_, r);
    const int64_t from = std::max(begin, shard.begin), to = std::min(end, shard.end);
    if (from < to) out.push_back({from, to, r});
  }
  return out;
}

}  // namespace spt::dist
