// Host side shared by the attention launchers: the validated geometry of one call and
// the mapping from run-time (tile, head dim) to the compiled kernel instances.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "core/error.h"
#include "ops/cuda/attention_plan.h"
#include "ops/cuda/attention_common.cuh"

namespace spt::cuda::detail {

struct LaunchGeometry {
  AttentionShape shape;  // resolved strides; Dk == Dv, or Dk == Dv / 2 on the SIMT kernels
  int tile = 64;         // TILE = min(BS, 64)
  bool tensor_cores = false;  // mma.sync kernels (attention_tc_*.cu) instead of the SIMT ones
  float scale = 1.0f;    // 1 / sqrt(Dk), rounded as the CPU op rounds it
  cudaStream_t stream = nullptr;

  // One thread block per (tile, head, batch row).
  dim3 grid(int tile_rows) const {
    const auto tiles = static_cast<unsigned>((shape.T + tile_rows - 1) / tile_rows);
    return dim3(tiles, static_cast<unsigned>(shape.H), static_cast<unsigned>(shape.B));
  }
};

// The tensor-core kernels' 1-D grid: (64-row tiles) x B x H CTAs, the tile rank slowest.
inline dim3 tc_grid(const LaunchGeometry& g) {
  const int64_t tiles = (g.shape.T + 63) / 64;
  const int64_t ctas = tiles * g.shape.B * g.shape.H;
  SPT_CHECK(ctas <= int64_t{0x7FFFFFFF}, "attention: ", ctas, " thread blocks exceed the CUDA grid limit; use fewer heads or a shorter context");
  return dim3(static_cast<unsigned>(ctas));
}

// True when every row of every 2-byte tensor starts on a 16-byte boundary: the base pointers
// are 16-byte aligned and the row strides are multiples of 8 elements.
inline bool rows_vector_aligned(std::initializer_list<const void*> pointers, std::initializer_list<int64_t> strides) {
  for (const void* p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  for (int64_t stride : strides)
    if (stride % 8 != 0) return false;
  return true;
}

// Raises the kernel's dynamic shared-memory limit to `bytes`, after checking that the
// current device offers that much to one block.
void prepare_kernel(const void* kernel, size_t bytes);

// Calls f(std::integral_constant<int, TILE>, std::integral_constant<int, DK>,
// std::integral_constant<int, DV>) for the compiled triple: DK = DV in {32, 64, 128} or
// DK = DV / 2 with DV in {32, 64, 128}; tile and dims were validated at the entry point.
template <typename F>
void dispatch_tile_and_dims(int tile, int dk, int dv, F&& f) {
  auto with_tile = [&](auto tile_c) {
    using std::integral_constant;
    if (dk == dv) {
      switch (dk) {
        case 32: return f(tile_c, integral_constant<int, 32>{}, integral_constant<int, 32>{});
        case 64: return f(tile_c, integral_constant<int, 64>{}, integral_constant<int, 64>{});
        case 128: return f(tile_c, integral_constant<int, 128>{}, integral_constant<int, 128>{});
        default: break;
      }
    } else if (2 * dk == dv) {
      switch (dk) {
        case 16: return f(tile_c, integral_constant<int, 16>{}, integral_constant<int, 32>{});
        case 32: return f(tile_c, integral_constant<int, 32>{}, integral_constant<int, 64>{});
        case 64: return f(tile_c, integral_constant<int, 64>{}, integral_constant<int, 128>{});
        default: break;
      }
    }
    throw Error(message("head dims Dk = ", dk, ", Dv = ", dv,
                        " have no CUDA attention kernel: use Dk = Dv in {32, 64, 128} or Dk = Dv / 2"));
  };
  switch (tile) {
    case 16: return with_tile(std::integral_constant<int, 16>{});
    case 32: return with_tile(std::integral_constant<int, 32>{});
    case 64: return with_tile(std::integral_constant<int, 64>{});
    default: throw Error(message("attention tile ", tile, " has no CUDA kernel: use block size 16, 32, 64 or 128"));
  }
}

void forward(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
             const void* v, void* out, float* lse);

// delta: (B, H, T) = rowsum(dout * out), one warp per row.
void attention_delta(const LaunchGeometry& g, DType dtype, const void* out, const void* dout, float* delta);

// delta: (B, H, T) scratch of rowsum(dout * out).
void backward(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
              const void* v, const void* out, const float* lse, const void* dout, float* delta, void* dq, void* dk,
              void* dv);

// Tensor-core versions (bf16 / fp16, Dk = Dv in {32, 64, 128}, BS 64 or 128). backward_tc takes
// delta already computed.
void forward_tc(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
                const void* v, void* out, float* lse);
void backward_tc(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
                 const void* v, const float* lse, const void* dout, const float* delta, void* dq, void* dk, void* dv);

}  // namespace spt::cuda::detail
