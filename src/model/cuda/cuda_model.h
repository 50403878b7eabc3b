// The Sparse Transformer of docs/MODEL.md on one GPU: the CPU Model's computation, the
// blocks of model/block.h over the GPU op table (model/cuda/cuda_ops.h), on device
// buffers. Master weights, gradients, AdamW moments, the residual stream and all
// statistics are fp32; activations and the weight copies the matrix products read have
// the precision's type (fp32, bf16 or fp16). Every buffer of a batch size lives in one
// device allocation planned up front.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/model.h"
#include "ops/dtype.h"

namespace spt::cuda {

// Device memory of a model at one batch size, in bytes.
struct MemoryPlan {
  int64_t params = 0;       // fp32 master weights and their activation-type copy
  int64_t gradients = 0;
  int64_t optimizer = 0;    // AdamW moments
  int64_t activations = 0;  // residual stream, per-layer activations, backward scratch
  int64_t workspace = 0;    // cuBLASLt workspace and attention plans
  int64_t total() const { return params + gradients + optimizer + activations + workspace; }
  std::string describe() const;  // "params 12.6 MiB, gradients ..., total ..."
};

// What a data-parallel rank keeps for training: the AdamW moments of the flattened
// parameters [moments_begin, moments_end) only (its shard), and a gradient buffer of
// gradient_capacity floats (at least P; collectives that cut it into equal pieces need the
// padding, dist::shard_padded_size). The defaults: every moment, P gradients.
struct OptimizerShard {
  int64_t moments_begin = 0;
  int64_t moments_end = -1;  // -1: P
  int64_t gradient_capacity = 0;
};

class CudaModel {
 public:
  // The parameter layout is the host model's (same offsets), so weights and optimizer
  // state copy as whole buffers (or the shard's range) in either direction.
  // deterministic: backward passes that repeat bit for bit (DeviceAttentionPlan::deterministic).
  CudaModel(const Model& host, DType precision, bool training, bool deterministic = false,
            OptimizerShard shard = {});
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  const ModelConfig& config() const;
  DType precision() const;  // the activations' type
  // Which attention kernels serve this model: "fast", "tensor-core" or "simt" (attention.h).
  std::string attention_path() const;
  bool recompute = true;

  void upload_weights(const std::vector<float>& weights);                        // (P)
  void download_weights(std::vector<float>& weights) const;                      // (P)
  // The fp32 master weights (P) on the device, for whole-buffer updates that read them
  // beside AdamW (the trainer's weight average).
  const float* master_weights() const;
  // m, v: (moments_end - moments_begin) each, the moments of the model's shard.
  void upload_optimizer(const std::vector<float>& m, const std::vector<float>& v, int64_t step);
  void download_optimizer(std::vector<float>& m, std::vector<float>& v) const;
  int64_t optimizer_bytes() const;  // the moments on the device
  void download_grads(std::vector<float>& grads) const;                          // (P)

  void zero_grads();
  // Adds d(mean loss * loss_scale)/d(params) into the device gradients; returns the
  // mean loss in nats. tokens: (B, T) on the host. on_gradients_ready (may be null) is
  // called once the work that finishes those gradients is queued on the default stream.
  double forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale,
                          const GradientsReady* on_gradients_ready = nullptr);
  // Per-token losses (B, T) in nats, to the host, without dropout.
  void evaluate(const uint8_t* tokens, int B, float* losses);

  // Global L2 norm of the device gradients, divided by `unscale`.
  double gradient_norm(double unscale) const;
  // Sum of squares of the gradients [begin, end) in fp64 (a data-parallel rank's share of
  // the global norm), in the fixed order gradient_norm uses over the whole buffer.
  double gradient_sum_of_squares(int64_t begin, int64_t end) const;
  // AdamW with the gradients multiplied by grad_scale first (unscaling and clipping).
  void optimizer_step(const TrainConfig& train, double lr, float grad_scale);
  // The same on the flattened parameters [begin, end) only (a data-parallel rank's shard,
  // within the moments the model keeps): their master weights, moments and compute copy
  // change; the step count advances.
  void optimizer_step(const TrainConfig& train, double lr, float grad_scale, int64_t begin, int64_t end);
  // The fp32 buffers in device memory, for collectives across GPUs (data parallelism);
  // after writing the weights, weights_changed() re-derives the compute-precision copy.
  struct DeviceParams {
    float* weights;  // (P)
    float* grads;    // (gradient_capacity), the first P the gradients, the rest zero padding
  };
  DeviceParams device_params();
  void weights_changed();

  // The plan for batch B (training or evaluation buffers); throws with the numbers when
  // it does not fit in the free device memory.
  MemoryPlan memory_plan(int B, bool training) const;
  const MemoryPlan& current_plan() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace spt::cuda
