// The CUDA engine: a CudaModel trained with the device's AdamW and, with --ema, a weight
// average on the device; the host Model and OptimizerState are refreshed from the device
// before checkpoints.
#include <cuda_runtime.h>

#include <cmath>
#include <optional>

#include "core/cuda_check.h"
#include "core/error.h"
#include "dist/gradient_reducer.h"
#include "model/cuda/cuda_model.h"
#include "ops/cuda/optimizer.h"
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

// The communicator the engine uses: a device communicator serves even a world of one
// (tests compare it with none); a host one only for more ranks (then refused).
dist::Communicator* engine_comm(const EngineOptions& options) {
  dist::Communicator* comm = options.comm;
  return comm != nullptr && (comm->world() > 1 || comm->device_buffers()) ? comm : nullptr;
}

// The moments the device keeps (the optimizer's range: the rank's shard under data
// parallelism) and the gradient padding the reduce-scatter needs.
cuda::OptimizerShard optimizer_shard(const Model& model, const OptimizerState* optimizer, dist::Communicator* comm) {
  cuda::OptimizerShard shard;
  if (optimizer == nullptr) return shard;
  check_optimizer_shard(*optimizer, model.params().total(), comm);
  shard.moments_begin = optimizer->moments_begin;
  shard.moments_end = optimizer->moments_end();
  if (comm != nullptr) shard.gradient_capacity = dist::shard_padded_size(model.params().total(), comm->world());
  return shard;
}

class CudaEngine final : public Engine {
 public:
  CudaEngine(const EngineOptions& options, Model& model, OptimizerState* optimizer)
      : host_(model),
        optimizer_(optimizer),
        comm_(engine_comm(options)),
        gpu_(model, cuda::parse_dtype(options.precision.empty() ? "bf16" : options.precision),
             options.training && optimizer != nullptr, options.deterministic,
             optimizer_shard(model, optimizer, comm_)),
        deterministic_(options.deterministic) {
    SPT_CHECK(comm_ == nullptr || comm_->device_buffers(), "the CUDA backend needs a device communicator (NCCL), not ",
              comm_->describe());
    gpu_.recompute = model.recompute;
    if (comm_ != nullptr) reducer_.emplace(*comm_, model.params().total(), options.bucket_floats);
    if (optimizer_ != nullptr) gpu_.upload_optimizer(optimizer_->exp_avg, optimizer_->exp_avg_sq, optimizer_->step);
    if (optimizer_ != nullptr && !optimizer_->ema.empty()) {
      average_ = DeviceBuffer<float>(optimizer_->ema.size());
      average_.upload(optimizer_->ema.data(), optimizer_->ema.size());
    }
  }
  std::string describe() const override {
    return "cuda " + std::string(cuda::dtype_name(gpu_.precision())) + " on " + device_name() + ", attention kernels: " +
           gpu_.attention_path() + (deterministic_ ? ", deterministic" : "") +
           (comm_ == nullptr ? "" : ", data-parallel over " + comm_->describe() + ", " + reducer_->describe());
  }
  bool dynamic_loss_scaling() const override { return gpu_.precision() == cuda::DType::f16; }
  void zero_grads() override {
    if (reducer_) reducer_->abandon();
    gpu_.zero_grads();
  }
  double forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale) override {
    gpu_.recompute = host_.recompute;
    return gpu_.forward_backward(tokens, B, dropout, loss_scale, reducer_ ? reducer_->take_hook() : nullptr);
  }
  void reduce_during_next_backward() override {
    if (reducer_) reducer_->arm(gpu_.device_params().grads);
  }
  void evaluate(const uint8_t* tokens, int B, float* losses) override { gpu_.evaluate(tokens, B, losses); }
  double step(const TrainConfig& train, double lr, float loss_scale) override {
    SPT_CHECK(optimizer_ != nullptr, "this engine was made without an optimizer");
    const int64_t n = static_cast<int64_t>(host_.weights().size());
    const dist::ShardRange shard = comm_ == nullptr ? dist::ShardRange{0, n}
                                                    : dist::shard_range(n, comm_->world(), comm_->rank());
    const double norm = comm_ == nullptr ? gpu_.gradient_norm(loss_scale) : sharded_norm(shard, loss_scale);
    if (!std::isfinite(norm)) return norm;
    const double clip = train.clip > 0 && norm > train.clip ? train.clip / norm : 1.0;
    const float grad_scale = static_cast<float>(clip / loss_scale);
    if (comm_ == nullptr) {
      gpu_.optimizer_step(train, lr, grad_scale);
    } else {
      // Sharded AdamW: this rank updates its shard of the weights with the moments it
      // alone keeps, then the weights are gathered whole.
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
  // The moments are the rank's shard on the device and on the host alike.
  void sync_to_host() override {
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
  int64_t optimizer_bytes() const override { return gpu_.optimizer_bytes(); }
  std::string memory_report() const override { return gpu_.current_plan().describe(); }

 private:
  // Each rank needs only its shard's gradients summed over the ranks (the buckets queued
  // during the backward, or one reduce-scatter now); the global norm is the root of the
  // shards' sums of squares added over the ranks in fp64 (another order than one GPU's:
  // equal to rounding; the same bits in a world of one).
  double sharded_norm(dist::ShardRange shard, float loss_scale) {
    reducer_->finish(gpu_.device_params().grads);
    return std::sqrt(dist::all_sum(*comm_, gpu_.gradient_sum_of_squares(shard.begin, shard.end))) / loss_scale;
  }

  Model& host_;
  OptimizerState* optimizer_;
  dist::Communicator* comm_;  // NCCL; null alone
  cuda::CudaModel gpu_;
  std::optional<dist::GradientReducer> reducer_;  // with comm_
  DeviceBuffer<float> average_;  // (P) the weight average, when the run keeps one
  bool deterministic_;
};

}  // namespace

std::unique_ptr<Engine> make_cuda_engine(const EngineOptions& options, Model& model, OptimizerState* optimizer) {
  return std::make_unique<CudaEngine>(options, model, optimizer);
}

}  // namespace spt
