// Sums a data-parallel rank's gradients over the ranks so that each rank's shard holds its
// sums (what Communicator::reduce_scatter leaves; the rest of the buffer is undefined).
// Armed for the backward that finishes a step's gradients, it reduces them in buckets
// while that backward runs (dist/bucket_plan.h), told by the model's on_gradients_ready
// hook; otherwise (no buckets, or the backward was not armed) finish() reduce-scatters the
// whole buffer once, as before buckets existed.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "dist/bucket_plan.h"
#include "dist/communicator.h"

namespace spt::dist {

class GradientReducer {
 public:
  // n gradients; bucket: floats per bucket (bucket_floats), 0 for none. The buffers given
  // below are the communicator's kind (device buffers padded to shard_padded_size for NCCL).
  GradientReducer(Communicator& comm, int64_t n, int64_t bucket);
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward finishes the step's gradients x (n): reduce them while it runs.
  void arm(float* x);
  // The hook to hand to that backward (Model::forward_backward's on_gradients_ready): the
  // reducer's own once after arm(), else null. Throws for a second backward after the armed
  // one before finish(): it would change gradients already reduced.
  const std::function<void(int64_t)>* take_hook();
  // The hook's body: gradients [ready_from, n) are final.
  void ready(int64_t ready_from);
  // Each rank's shard of x (n) holds its sums over the ranks once the communicator's
  // ordering says so (device: for the work queued after this call).
  void finish(float* x);
  // The step is not taken (its loss was not finite): waits for the buckets already queued,
  // which every rank queued alike, and forgets the rest.
  void abandon();

  // "gradients reduced in buckets of 25 MiB during the backward"
  std::string describe() const;

 private:
  // One bucket; the whole buffer goes as one reduce-scatter, the collective built for it.
  void reduce(float* x, const std::vector<ReducePiece>& bucket);

  Communicator& comm_;
  int64_t n_;
  std::optional<BucketPlan> plan_;  // absent without buckets
  std::function<void(int64_t)> hook_;
  enum class Phase { idle, armed, reducing } phase_ = Phase::idle;
  float* x_ = nullptr;  // (n) the armed backward's gradients
};

}  // namespace spt::dist
