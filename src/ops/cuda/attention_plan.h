// CUDA backend of sparse causal attention (ops/attention.h): the same entry points on
// device pointers, and the per-layer device plan they read. Built only with
// SPT_HAVE_CUDA; these declarations need no CUDA header.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/attention.h"
#include "ops/dtype.h"
#include "pattern/pattern.h"

namespace spt::cuda {

// One layer's block layout and head masks for a context of T positions, copied to the
// device once and reused by every forward and backward call of that layer.
class DeviceAttentionPlan {
 public:
  DeviceAttentionPlan() = default;
  ~DeviceAttentionPlan();
  DeviceAttentionPlan(const DeviceAttentionPlan&) = delete;
  DeviceAttentionPlan& operator=(const DeviceAttentionPlan&) = delete;
  DeviceAttentionPlan(DeviceAttentionPlan&& other) noexcept;
  DeviceAttentionPlan& operator=(DeviceAttentionPlan&& other) noexcept;

  int64_t T = 0;
  int block = 0;       // BS
  int heads = 0;       // H
  int64_t blocks = 0;  // nb = ceil(T / BS)
  int64_t nnz = 0;     // listed (query block, key block) pairs over all heads
  // Device arrays, meaning as in BlockLayout; all live in one allocation owned here.
  const int64_t* row_begin = nullptr;    // (H * nb + 1)
  const int32_t* key_block = nullptr;    // (nnz)
  const uint8_t* key_full = nullptr;     // (nnz)
  const int64_t* col_begin = nullptr;    // (H * nb + 1)
  const int32_t* query_block = nullptr;  // (nnz)
  const uint8_t* query_full = nullptr;   // (nnz)
  const void* head_masks = nullptr;      // (H) element predicate of each head, device form
  // false keeps every call of this plan on the SIMT kernels (to compare the two paths).
  bool tensor_cores = true;
  // false keeps 2-byte calls off the pattern-specific kernels (on the block-layout ones).
  bool fast = true;
  // true makes the backward repeat bit for bit: at head dim 64 on sm_90a the fast path
  // otherwise accumulates dQ in its dK/dV pass with fp32 atomic additions in a varying
  // order (5 tile products instead of 7). The other paths are always deterministic.
  bool deterministic = false;

  // What the pattern-specific kernels need, read off the head masks at build time.
  struct Parts {
    int stride = 1;            // l, the same for every head
    bool columns = false;      // strided with A2 in some head
    bool summary_part = false; // fixed with A2 in some head
    int summary_keys = 0;      // fixed: the most summary keys before T of any head
  } parts;
  bool has_layout() const { return row_begin != nullptr; }

 private:
  friend DeviceAttentionPlan make_device_plan(const Pattern& pattern, int layer, int64_t T, int block,
                                              bool with_layout);
  void* storage_ = nullptr;
};

// Builds the block layout of `pattern` at `layer` for context T and block size BS
// (16, 32, 64 or 128) and uploads it to the current device. Without the layout
// (with_layout false: its size grows as (T / BS)^2, too large at T of a million) the plan
// serves only the pattern-specific kernels, so only 2-byte calls with Dk == Dv.
DeviceAttentionPlan make_device_plan(const Pattern& pattern, int layer, int64_t T, int block = 64,
                                     bool with_layout = true);

// Which kernels serve a call: "fast" (pattern-specific tensor-core kernels over compacted
// views: fixed's summary keys gathered, strided's columns transposed; no block layout) for
// bf16 and fp16 when Dk == Dv in {32, 64, 128} and plan.fast is set; else "tensor-core"
// (mma.sync over the block layout) when also BS is 64 or 128 and plan.tensor_cores is set;
// "simt" (fp32 math, any BS) otherwise, including half-width q/k (Dk = Dv / 2). fp32
// tensors always take the SIMT kernels.
const char* attention_path(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype);

// Scratch of one call, in bytes: rowsum(dout * out) (backward), and on the fast path the fp32
// partial results of a strided (fixed) pattern's column (summary) part: one copy of the head
// slices in the forward, three (2 x slices) in the backward, plus an fp32 dQ in the backward
// when the fast path accumulates dQ (not deterministic). Callers that plan their memory
// up front pass this much as `workspace` (16-byte aligned); without a workspace the call
// takes its scratch from the device's stream-ordered pool.
size_t attention_workspace_bytes(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype,
                                 bool backward);

// Device pointers, layout and strides as in spt::cpu. Requires Dv in {32, 64, 128} and
// Dk = Dv or Dk = Dv / 2 (half_qk models);
// dtype fp32, bf16 or fp16 (2-byte tensors read best with 16-byte aligned rows).
// out: (B, T, H, Dv) overwritten; lse: (B, H, T) fp32 overwritten. Asynchronous on `stream`.
void attention_forward(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype, const void* q,
                       const void* k, const void* v, void* out, float* lse, CUstream_st* stream = nullptr,
                       void* workspace = nullptr, size_t workspace_bytes = 0);

// dq, dk, dv: overwritten (only their own columns of a fused buffer are touched).
// Deterministic unless the fast path accumulates dQ (see DeviceAttentionPlan::deterministic):
// each gradient element is then summed in a fixed order by one thread, no atomics.
void attention_backward(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype, const void* q,
                        const void* k, const void* v, const void* out, const float* lse, const void* dout, void* dq,
                        void* dk, void* dv, CUstream_st* stream = nullptr, void* workspace = nullptr,
                        size_t workspace_bytes = 0);

}  // namespace spt::cuda
