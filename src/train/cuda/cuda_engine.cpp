// The CUDA engine: a CudaModel trained with the device's AdamW and, with --ema, a weight
// average on the device; the host Model and OptimizerState are refreshed from the device
// before checkpoints.
#include <cuda_runtime.h>

#include <cmath>

#include "core/cuda_check.h"
#include "core/error.h"
#include "model/cuda/cuda_model.h"
#include "ops/optimizer_cuda.h"
#include "train/engine.h"

namespace spt {
namespace {

std::string device_name() {
  int device = 0;
  cudaDeviceProp props{};
  SPT_CUDA_CHECK(cudaGetDevice(&device));
  SPT_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
  return props.name;
}

class CudaEngine final : public Engine {
 public:
  CudaEngine(const EngineOptions& options, Model& model, OptimizerState* optimizer)
      : host_(model),
        optimizer_(optimizer),
        gpu_(model, cuda::parse_precision(options.precision.empty() ? "bf16" : options.precision),
             options.training && optimizer != nullptr, options.deterministic),
        deterministic_(options.deterministic),
        // A device communicator serves even a world of one (tests compare it with none).
        comm_(options.comm != nullptr && (options.comm->world() > 1 || options.comm->device_buffers()) ? options.comm
                                                                                                     : nullptr) {
    SPT_CHECK(comm_ == nullptr || comm_->device_buffers(), "the CUDA backend needs a device communicator (NCCL), not ",
              comm_->describe());
    gpu_.recompute = model.recompute;
    if (optimizer_ != nullptr) gpu_.upload_optimizer(optimizer_->exp_avg, optimizer_->exp_avg_sq, optimizer_->step);
    if (optimizer_ != nullptr && !optimizer_->ema.empty()) {
      average_ = DeviceBuffer<float>(optimizer_->ema.size());
      average_.upload(optimizer_->ema.data(), optimizer_->ema.size());
    }
  }
  std::string describe() const override {
    return "cuda " + cuda::to_string(gpu_.precision()) + " on " + device_name() + ", attention kernels: " +
           gpu_.attention_path() + (deterministic_ ? ", deterministic" : "") +
           (comm_ == nullptr ? "" : ", data-parallel over " + comm_->describe());
  }
  bool dynamic_loss_scaling() const override { return gpu_.precision() == cuda::Precision::fp16; }
  void zero_grads() override { gpu_.zero_grads(); }
  double forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale) override {
    gpu_.recompute = host_.recompute;
    return gpu_.forward_backward(tokens, B, dropout, loss_scale);
  }
  void evaluate(const uint8_t* tokens, int B, float* losses) override { gpu_.evaluate(tokens, B, losses); }
  double step(const TrainConfig& train, double lr, float loss_scale) override {
    SPT_CHECK(optimizer_ != nullptr, "this engine was made without an optimizer");
    // Each rank's gradients are its share of the mean: their sum over ranks is the mean.
    const int64_t n = static_cast<int64_t>(host_.weights().size());
    if (comm_ != nullptr) comm_->all_reduce_sum(gpu_.device_params().grads, n);
    const double norm = gpu_.gradient_norm(loss_scale);
    if (!std::isfinite(norm)) return norm;
    const double clip = train.clip > 0 && norm > train.clip ? train.clip / norm : 1.0;
    const float grad_scale = static_cast<float>(clip / loss_scale);
    if (comm_ == nullptr) {
      gpu_.optimizer_step(train, lr, grad_scale);
    } else {
      // Sharded AdamW: this rank updates its shard of the weights and moments, then the
      // weights are gathered whole.
      const dist::ShardRange shard = dist::shard_range(n, comm_->world(), comm_->rank());
      gpu_.optimizer_step(train, lr, grad_scale, shard.begin, shard.end);
      comm_->all_gather(gpu_.device_params().weights, n);
      gpu_.weights_changed();
    }
    ++optimizer_->step;
    if (train.ema > 0) {
      SPT_CHECK(average_.size() == host_.weights().size(), "the run averages its weights (--ema ", train.ema,
                ") but the engine was made without the average: start OptimizerState::ema from the weights");
      cuda::ema_update(gpu_.master_weights(), average_.data(), static_cast<int64_t>(average_.size()), train.ema);
    }
    return norm;
  }
  void sync_to_host() override {
    if (comm_ != nullptr && optimizer_ != nullptr) {  // the moments' shards, gathered whole
      const int64_t n = static_cast<int64_t>(host_.weights().size());
      comm_->all_gather(gpu_.device_params().exp_avg, n);
      comm_->all_gather(gpu_.device_params().exp_avg_sq, n);
    }
    gpu_.download_weights(host_.weights());
    if (optimizer_ != nullptr) gpu_.download_optimizer(optimizer_->exp_avg, optimizer_->exp_avg_sq);
    if (optimizer_ != nullptr && average_.size() > 0) {
      optimizer_->ema.resize(average_.size());
      average_.download(optimizer_->ema.data(), average_.size());
    }
  }
  // Through the host: validation is rare, and uploading refreshes the weights' copy in
  // the activation type exactly as training does.
  void swap_average() override {
    SPT_CHECK(average_.size() > 0, "this engine keeps no weight average (train with --ema)");
    std::vector<float> trained, average(average_.size());  // (P) each
    gpu_.download_weights(trained);
    average_.download(average.data(), average.size());
    gpu_.upload_weights(average);
    average_.upload(trained.data(), trained.size());
  }
  int64_t activation_bytes() const override { return gpu_.current_plan().activations; }
  std::string memory_report() const override { return gpu_.current_plan().describe(); }

 private:
  Model& host_;
  OptimizerState* optimizer_;
  cuda::CudaModel gpu_;
  DeviceBuffer<float> average_;  // (P) the weight average, when the run keeps one
  bool deterministic_;
  dist::Communicator* comm_;  // NCCL; null alone
};

}  // namespace

std::unique_ptr<Engine> make_cuda_engine(const EngineOptions& options, Model& model, OptimizerState* optimizer) {
  return std::make_unique<CudaEngine>(options, model, optimizer);
}

}  // namespace spt
