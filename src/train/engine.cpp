#include "train/engine.h"

#include <cmath>

#include "core/error.h"

namespace spt {

#ifdef SPT_HAVE_CUDA
std::unique_ptr<Engine> make_cuda_engine(const EngineOptions& options, Model& model, OptimizerState* optimizer);
#endif

namespace {

class CpuEngine final : public Engine {
 public:
  CpuEngine(Model& model, OptimizerState* optimizer, dist::Communicator* comm)
      : model_(model), optimizer_(optimizer), comm_(comm != nullptr && comm->world() > 1 ? comm : nullptr) {
    SPT_CHECK(comm_ == nullptr || !comm_->device_buffers(), "the CPU backend needs a host communicator (MPI), not ",
              comm_->describe());
  }
  std::string describe() const override {
    return comm_ == nullptr ? "cpu fp32" : "cpu fp32, data-parallel over " + comm_->describe();
  }
  void zero_grads() override { model_.zero_grads(); }
  double forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale) override {
    return model_.forward_backward(tokens, B, dropout, loss_scale);
  }
  void evaluate(const uint8_t* tokens, int B, float* losses) override { model_.evaluate(tokens, B, losses); }
  double step(const TrainConfig& train, double lr, float loss_scale) override {
    SPT_CHECK(optimizer_ != nullptr, "this engine was made without an optimizer");
    SPT_CHECK(loss_scale == 1.0f, "the CPU backend trains in fp32 without loss scaling");
    // Under data parallelism every rank gets the same summed gradients, hence the same norm
    // and clipping; each then updates its shard and the weights are gathered whole.
    const int64_t n = model_.params().total();
    if (comm_ != nullptr) comm_->all_reduce_sum(model_.grads().data(), n);
    const double norm = clip_gradients(model_, train.clip);
    if (!std::isfinite(norm)) return norm;
    if (comm_ == nullptr) {
      optimizer_step(model_, *optimizer_, train, lr);
    } else {
      const dist::ShardRange shard = dist::shard_range(n, comm_->world(), comm_->rank());
      optimizer_step(model_, *optimizer_, train, lr, shard.begin, shard.end);
      comm_->all_gather(model_.weights().data(), n);
    }
    // Every rank holds the whole weights, so each keeps the whole average itself.
    if (train.ema > 0) ema_update(model_.weights(), optimizer_->ema, train.ema);
    return norm;
  }
  void sync_to_host() override {
    if (comm_ == nullptr || optimizer_ == nullptr) return;
    const int64_t n = model_.params().total();
    comm_->all_gather(optimizer_->exp_avg.data(), n);
    comm_->all_gather(optimizer_->exp_avg_sq.data(), n);
  }
  void swap_average() override {
    SPT_CHECK(optimizer_ != nullptr && optimizer_->ema.size() == model_.weights().size(),
              "this engine keeps no weight average (train with --ema)");
    model_.weights().swap(optimizer_->ema);
  }
  int64_t activation_bytes() const override { return model_.activation_bytes(); }

 private:
  Model& model_;
  OptimizerState* optimizer_;
  dist::Communicator* comm_;  // null alone
};

}  // namespace

void Engine::swap_average() { throw Error("this engine keeps no weight average (train with --ema)"); }

std::unique_ptr<Engine> make_engine(const EngineOptions& options, Model& model, OptimizerState* optimizer) {
  if (options.device == "cpu") {
    SPT_CHECK(options.precision.empty() || options.precision == "fp32", "the CPU backend computes in fp32, not ",
              options.precision, ": drop --precision or use --device cuda");
    return std::make_unique<CpuEngine>(model, optimizer, options.comm);
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
