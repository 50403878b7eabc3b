// Host side of the pattern-specific ("fast") attention kernels: which parts a plan has,
// the grids, and the fp32 scratch that carries one part's result to the next kernel.
#pragma once

#include <cstdint>

#include "ops/cuda/attention_launch.h"

namespace spt::cuda::detail {

struct FastLaunch {
  LaunchGeometry geometry;
  const DeviceHeadMask* masks = nullptr;  // (H) on the device
  DeviceAttentionPlan::Parts parts;       // which parts the heads have
  int slices = 1;  // fixed dK/dV: query ranges of one summary key tile, each its own CTA
  // The dK/dV kernels also accumulate dQ (fp32 additions in a varying order); false keeps
  // the backward deterministic with a separate dQ pass.
  bool accumulate_dq = false;

  int64_t natural_tiles() const { return (geometry.shape.T + 63) / 64; }
  int64_t group_tiles() const { return ((geometry.shape.T + parts.stride - 1) / parts.stride + 63) / 64; }
  int64_t summary_tiles() const { return (parts.summary_keys + 63) / 64; }
};

// A 1-D grid of ranks * B * H CTAs, the (batch row, head) pair fastest.
inline dim3 fast_grid(const FastLaunch& g, int64_t ranks) {
  const int64_t ctas = ranks * g.geometry.shape.B * g.geometry.shape.H;
  SPT_CHECK(ctas > 0 && ctas <= int64_t{0x7FFFFFFF}, "attention: ", ctas,
            " thread blocks exceed the CUDA grid limit; use fewer heads or a shorter context");
  return dim3(static_cast<unsigned>(ctas));
}

// fp32 buffers between the kernels of one call (null when the plan has no such part).
struct FastScratch {
  float* part_o = nullptr;    // (B, H, T, D) forward: the column part's normalized output
  float* part_lse = nullptr;  // (B, H, T) its log2-sum-exp
  float* dq_part = nullptr;   // (B, H, T, D) backward: the column part's dQ
  float* dk_part = nullptr;   // columns: (B, H, T, D); summary: (slices, B, H, summary_keys, D)
  float* dv_part = nullptr;   // same shape as dk_part
  float* dq_accum = nullptr;  // (B, H, ceil(T / 64), 64 * D) backward with accumulate_dq: dQ
};

// Whether the backward kernels of head dim D can accumulate dQ in the dK/dV pass (wgmma builds).
bool fast_accumulates_dq(int D);

void forward_fast(const FastLaunch& g, DType dtype, const void* q, const void* k, const void* v, void* out,
                  float* lse, const FastScratch& scratch);
// delta: (B, H, T) rowsum(dout * out), computed before.
void backward_fast(const FastLaunch& g, DType dtype, const void* q, const void* k, const void* v, const float* lse,
                   const void* dout, const float* delta, void* dq, void* dk, void* dv, const FastScratch& scratch);

}  // namespace spt::cuda::detail
