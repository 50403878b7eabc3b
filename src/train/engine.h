// Where a model trains and evaluates: the CPU (the Model itself) or one GPU (a
// CudaModel mirroring it). The trainer and evaluator talk to an Engine only, so they run
// unchanged on either backend; the host Model and OptimizerState stay the checkpointed
// truth (under data parallelism the OptimizerState holds the rank's shard of the moments),
// brought up to date by sync_to_host() before every save.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dist/communicator.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace spt {

struct EngineOptions {
  std::string device = "cpu";  // cpu | cuda
  std::string precision;       // fp32 | bf16 | fp16; empty: fp32 on the CPU, bf16 on the GPU
  bool training = true;
  // cuda: backward passes that repeat bit for bit (the attention backward then runs a
  // separate dQ pass instead of accumulating dQ with atomic additions: slower).
  bool deterministic = false;
  // Data parallelism: each rank passes its share of the mean as loss_scale; step() sums
  // each rank's shard of the gradients over the ranks (reduce-scatter), takes the global
  // norm from the shards' sums of squares, updates the rank's shard of the parameters
  // (dist::shard_range) with the moments it alone keeps (the optimizer must hold that shard:
  // share_weights in train/data_parallel.h) and gathers the weights whole. Null: a world of one.
  dist::Communicator* comm = nullptr;
  // Data parallelism: gradients per bucket reduced while the backward runs after
  // reduce_during_next_backward() (dist::bucket_floats of TrainConfig::bucket_mib); 0: none,
  // step() reduce-scatters them all.
  int64_t bucket_floats = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string describe() const = 0;  // e.g. "cpu fp32", "cuda bf16 on NVIDIA H100 80GB HBM3"
  virtual bool dynamic_loss_scaling() const { return false; }  // fp16: scale the loss, skip non-finite steps
  virtual void zero_grads() = 0;
  // Adds d(mean loss * loss_scale)/d(params) into the gradients; returns the mean loss.
  virtual double forward_backward(const uint8_t* tokens, int B, const DropoutContext& dropout, float loss_scale) = 0;
  // The next forward_backward is the last before step() (the last micro-batch): its
  // gradients are final as its backward produces them, so under data parallelism they are
  // reduced over the ranks in buckets while it runs (EngineOptions::bucket_floats). Without
  // this call step() reduces them all after the backward.
  virtual void reduce_during_next_backward() {}
  // Per-token losses (B, T) in nats, without dropout.
  virtual void evaluate(const uint8_t* tokens, int B, float* losses) = 0;
  // Divides the gradients by loss_scale, clips their global norm to `clip` (0: no clip)
  // and takes an AdamW step at `lr`, then (train.ema > 0) updates the weight average
  // OptimizerState::ema from the new weights. Returns the unscaled norm before clipping;
  // when it is not finite no step is taken.
  virtual double step(const TrainConfig& train, double lr, float loss_scale) = 0;
  // Copies weights and optimizer state (the weight average included) into the host model
  // and optimizer; under data parallelism the moments are the rank's shard
  // (save_gathered_checkpoint in train/data_parallel.h puts them together).
  virtual void sync_to_host() = 0;
  // Exchanges the weights evaluate() uses with the weight average (OptimizerState::ema,
  // which step() updates when train.ema > 0); a second call swaps them back bit for bit.
  // Validation scores the average this way. The default refuses: the engine keeps none.
  virtual void swap_average();
  virtual int64_t activation_bytes() const = 0;
  // Bytes of AdamW moments this rank keeps where it computes (its shard under data parallelism).
  virtual int64_t optimizer_bytes() const = 0;
  virtual std::string memory_report() const { return ""; }
};

// Throws unless `optimizer` holds the moments the engine updates: all n parameters' alone
// (comm null), or the rank's dist::shard_range.
void check_optimizer_shard(const OptimizerState& optimizer, int64_t n, const dist::Communicator* comm);

// An engine over `model` (and `optimizer`, for training; may be null otherwise). Asking
// for CUDA in a build or on a machine without it is an error, never a silent CPU run.
std::unique_ptr<Engine> make_engine(const EngineOptions& options, Model& model, OptimizerState* optimizer);

}  // namespace spt
