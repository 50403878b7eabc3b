#include "train/engine.h"

#include <cmath>
#include <optional>

#include "core/error.h"
#include "dist/gradient_reducer.h"

namespace spt {

#ifdef SPT_HAVE_CUDA
std::unique_ptr<Engine> make_cuda_engine(const EngineOptions& options, Model& model, OptimizerState* optimizer);
#endif

namespace {

class CpuEngine final : public Engine {
 public:
  CpuEngine(Model& model, OptimizerState* optimizer, dist::Communicator* comm, int64_t bucket_floats)
      : model_(model), optimizer_(optimizer), comm_(comm != nullptr && comm->world() > 1 ? comm : nullptr) {
    SPT_CHECK(comm_ == nullptr || !comm_->device_buffers(), "the CPU backend needs a host communicator (MPI), not ",
              comm_->describe());
    if (optimizer_ != nullptr) check_optimizer_shard(*optimizer_, model_.params().total(), comm_);
    if (comm_ != nullptr) reducer_.emplace(*comm_, model_.params().total(), bucket_floats);
  }
  std::string describe() const override {
    return comm_ == nullptr ? "cpu fp32"
                            : "cpu fp32, data-parallel over " + comm_->describe() + ", " + reducer_->describe();
  }
  void zero_grads() override {
    if (reducer_) reducer_->abandon();
    model_.zero_grads();
  }
  double forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale) override {
    return model_.forward_backward(tokens, B, dropout, loss_scale, reducer_ ? reducer_->take_hook() : nullptr);
  }
  void reduce_during_next_backward() override {
    if (reducer_) reducer_->arm(model_.grads().data());
  }
  void evaluate(const uint8_t* tokens, int B, float* losses) override { model_.evaluate(tokens, B, losses); }
  double step(const TrainConfig& train, double lr, float loss_scale) override {
    SPT_CHECK(optimizer_ != nullptr, "this engine was made without an optimizer");
    SPT_CHECK(loss_scale == 1.0f, "the CPU backend trains in fp32 without loss scaling");
    if (comm_ != nullptr) return sharded_step(train, lr);
    const double norm = clip_gradients(model_, train.clip);
    if (!std::isfinite(norm)) return norm;
    optimizer_step(model_, *optimizer_, train, lr);
    update_average(train);
    return norm;
  }
  // The moments live in the host optimizer already (the rank's shard under data parallelism).
  void sync_to_host() override {}
  void swap_average() override {
    SPT_CHECK(optimizer_ != nullptr && optimizer_->ema.size() == model_.weights().size(),
              "this engine keeps no weight average (train with --ema)");
    model_.weights().swap(optimizer_->ema);
  }
  int64_t activation_bytes() const override { return model_.activation_bytes(); }
  int64_t optimizer_bytes() const override { return optimizer_ == nullptr ? 0 : optimizer_->moment_bytes(); }

 private:
  // Each rank needs only its shard's gradients summed over the ranks (the buckets queued
  // during the backward, or one reduce-scatter now); the global norm is the root of the
  // shards' sums of squares added over the ranks (fp64, in another order than one process
  // adds them: equal to rounding). Every rank gets the same norm and clips alike, updates
  // its shard and the weights are gathered whole.
  double sharded_step(const TrainConfig& train, double lr) {
    const int64_t n = model_.params().total();
    const dist::ShardRange shard = dist::shard_range(n, comm_->world(), comm_->rank());
    reducer_->finish(model_.grads().data());
    float* grads = model_.grads().data() + shard.begin;  // (shard) summed over the ranks
    const double norm = std::sqrt(dist::all_sum(*comm_, sum_of_squares(grads, shard.size())));
    if (!std::isfinite(norm)) return norm;
    if (train.clip > 0 && norm > train.clip) scale_values(grads, shard.size(), static_cast<float>(train.clip / norm));
    optimizer_step(model_, *optimizer_, train, lr, shard.begin, shard.end);
    comm_->all_gather(model_.weights().data(), n);
    update_average(train);
    return norm;
  }
  // Every rank holds the whole weights, so each keeps the whole average itself.
  void update_average(const TrainConfig& train) {
    if (train.ema > 0) ema_update(model_.weights(), optimizer_->ema, train.ema);
  }

  Model& model_;
  OptimizerState* optimizer_;
  dist::Communicator* comm_;  // null alone
  std::optional<dist::GradientReducer> reducer_;  // with comm_
};

}  // namespace

void check_optimizer_shard(const OptimizerState& optimizer, int64_t n, const dist::Communicator* comm) {
  const dist::ShardRange shard = comm == nullptr ? dist::ShardRange{0, n} : dist::shard_range(n, comm->world(), comm->rank());
  SPT_CHECK(optimizer.moments_begin == shard.begin && optimizer.moments_end() == shard.end &&
                optimizer.exp_avg_sq.size() == optimizer.exp_avg.size(),
            "the optimizer state holds the moments of parameters [", optimizer.moments_begin, ", ",
            optimizer.moments_end(), ") but ", comm == nullptr ? std::string("this process") : comm->describe(),
            comm == nullptr ? "" : message(", rank ", comm->rank(), ","), " updates [", shard.begin, ", ", shard.end,
            "): build it as OptimizerState(model.params().total()), and under data parallelism hand it out with "
            "share_weights (train/data_parallel.h)");
}

void Engine::swap_average() { throw Error("this engine keeps no weight average (train with --ema)"); }

std::unique_ptr<Engine> make_engine(const EngineOptions& options, Model& model, OptimizerState* optimizer) {
  if (options.device == "cpu") {
    SPT_CHECK(options.precision.empty() || options.precision == "fp32", "the CPU backend computes in fp32, not ",
              options.precision, ": drop --precision or use --device cuda");
    return std::make_unique<CpuEngine>(model, optimizer, options.comm, options.bucket_floats);
  }
  if (options.device == "cuda") {
#ifdef SPT_HAVE_CUDA
    return make_cuda_engine(options, model, optimizer);
#else
    throw Error("this spt was built without CUDA: rebuild on a machine with the CUDA toolkit (cmake -DSPT_CUDA=ON) "
                "or use --device cpu");
#endif
  }
  throw Error(message("unknown device '", options.device, "': use cpu or cuda (--device)"));
}

}  // namespace spt
