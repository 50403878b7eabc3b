#include "dist/gradient_reducer.h"

#include "core/error.h"

namespace spt::dist {

GradientReducer::GradientReducer(Communicator& comm, int64_t n, int64_t bucket) : comm_(comm), n_(n) {
  SPT_CHECK(bucket >= 0, "gradient buckets of ", bucket, " floats: use 0 for none");
  if (bucket > 0) plan_.emplace(n, comm.world(), bucket);
  hook_ = [this](int64_t ready_from) { ready(ready_from); };
}

void GradientReducer::arm(float* x) {
  SPT_CHECK(phase_ != Phase::reducing, "gradient buckets armed again before the step reduced the armed backward's: "
                                       "arm only the last micro-batch of a step");
  if (!plan_) return;
  x_ = x;
  phase_ = Phase::armed;
}

const std::function<void(int64_t)>* GradientReducer::take_hook() {
  SPT_CHECK(phase_ != Phase::reducing,
            "a backward after the one whose gradients are being reduced, before the optimizer step: with "
            "--accumulate, only the last micro-batch's backward may reduce");
  if (phase_ != Phase::armed) return nullptr;
  plan_->restart();
  phase_ = Phase::reducing;
  return &hook_;
}

void GradientReducer::ready(int64_t ready_from) {
  SPT_CHECK(phase_ == Phase::reducing, "gradients reported final from ", ready_from,
            " outside an armed backward: hand the hook only to the backward take_hook() gave it for");
  const std::vector<ReducePiece> bucket = plan_->ready(ready_from);
  if (bucket.empty()) {
    comm_.progress_reductions();
  } else {
    reduce(x_, bucket);
  }
}

void GradientReducer::finish(float* x) {
  if (phase_ != Phase::reducing) {
    phase_ = Phase::idle;
    comm_.reduce_scatter(x, n_);
    return;
  }
  SPT_CHECK(x == x_, "the step reduces another gradient buffer than the armed backward: pass the buffer given to arm()");
  const std::vector<ReducePiece> rest = plan_->rest();
  if (!rest.empty()) reduce(x, rest);
  comm_.wait_reductions();
  phase_ = Phase::idle;
}

void GradientReducer::abandon() {
  if (phase_ == Phase::reducing) comm_.wait_reductions();
  phase_ = Phase::idle;
}

std::string GradientReducer::describe() const {
  if (!plan_) return "gradients reduce-scattered after the backward";
  return message("gradients reduced in buckets of ", plan_->bucket() * sizeof(float) / double(1 << 20),
                 " MiB during the backward");
}

void GradientReducer::reduce(float* x, const std::vector<ReducePiece>& bucket) {
  if (bucket.front().begin == 0 && bucket.back().end == n_) {
    comm_.reduce_scatter(x, n_);
  } else {
    comm_.reduce_to_roots(x, bucket);
  }
}

}  // namespace spt::dist
