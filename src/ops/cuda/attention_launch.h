// Host side shared by the attention launchers: the validated geometry of one call and
// the mapping from run-time (tile, head dim) to the compiled kernel instances.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <type_traits>

#include "core/error.h"
#include "ops/attention.h"
#include "ops/cuda/attention_common.cuh"

namespace spt::cuda::detail {

struct LaunchGeometry {
  AttentionShape shape;  // resolved strides, Dk == Dv
  int tile = 64;         // TILE = min(BS, 64)
  float scale = 1.0f;    // 1 / sqrt(Dk), rounded as the CPU op rounds it
  cudaStream_t stream = nullptr;

  // One thread block per (tile, head, batch row).
  dim3 grid(int tile_rows) const {
    const auto tiles = static_cast<unsigned>((shape.T + tile_rows - 1) / tile_rows);
    return dim3(tiles, static_cast<unsigned>(shape.H), static_cast<unsigned>(shape.B));
  }
};

// Raises the kernel's dynamic shared-memory limit to `bytes`, after checking that the
// current device offers that much to one block.
void prepare_kernel(const void* kernel, size_t bytes);

// Calls f(std::integral_constant<int, TILE>, std::integral_constant<int, D>) for the
// compiled pair; tile and dim were validated at the entry point.
template <typename F>
void dispatch_tile_and_dim(int tile, int dim, F&& f) {
  auto with_tile = [&](auto tile_c) {
    switch (dim) {
      case 32: return f(tile_c, std::integral_constant<int, 32>{});
      case 64: return f(tile_c, std::integral_constant<int, 64>{});
      case 128: return f(tile_c, std::integral_constant<int, 128>{});
      default: throw Error(message("head dim ", dim, " has no CUDA attention kernel: use 32, 64 or 128"));
    }
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

// delta: (B, H, T) scratch of rowsum(dout * out).
void backward(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
              const void* v, const void* out, const float* lse, const void* dout, float* delta, void* dq, void* dk,
              void* dv);

}  // namespace spt::cuda::detail
