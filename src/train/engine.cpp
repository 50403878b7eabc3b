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
  CpuEngine(Model& model, OptimizerState* optimizer) : model_(model), optimizer_(optimizer) {}
  std::string describe() const override { return "cpu fp32"; }
  void zero_grads() override { model_.zero_grads(); }
  double forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale) override {
    return model_.forward_backward(tokens, B, dropout, loss_scale);
  }
  void evaluate(const uint8_t* tokens, int B, float* losses) override { model_.evaluate(tokens, B, losses); }
  double step(const TrainConfig& train, double lr, float loss_scale) override {
    SPT_CHECK(optimizer_ != nullptr, "this engine was made without an optimizer");
    SPT_CHECK(loss_scale == 1.0f, "the CPU backend trains in fp32 without loss scaling");
    const double norm = clip_gradients(model_, train.clip);
    if (!std::isfinite(norm)) return norm;
    optimizer_step(model_, *optimizer_, train, lr);
    if (train.ema > 0) ema_update(model_.weights(), optimizer_->ema, train.ema);
    return norm;
  }
  void sync_to_host() override {}
  void swap_average() override {
    SPT_CHECK(optimizer_ != nullptr && optimizer_->ema.size() == model_.weights().size(),
              "this engine keeps no weight average (train with --ema)");
    model_.weights().swap(optimizer_->ema);
  }
  int64_t activation_bytes() const override { return model_.activation_bytes(); }

 private:
  Model& model_;
  OptimizerState* optimizer_;
};

}  // namespace

void Engine::swap_average() { throw Error("this engine keeps no weight average (train with --ema)"); }

std::unique_ptr<Engine> make_engine(const EngineOptions& options, Model& model, OptimizerState* optimizer) {
  if (options.device == "cpu") {
    SPT_CHECK(options.precision.empty() || options.precision == "fp32", "the CPU backend computes in fp32, not ",
              options.precision, ": drop --precision or use --device cuda");
    return std::make_unique<CpuEngine>(model, optimizer);
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
