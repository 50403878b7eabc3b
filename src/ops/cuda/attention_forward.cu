// Sparse causal attention forward on the block layout: the tensor-core kernels
// (attention_tc_forward.cu) when the geometry asks for them, else the SIMT kernels of the
// element type (attention_simt_forward.cuh).
#include "ops/cuda/attention_launch.h"
#include "ops/cuda/attention_simt_forward.cuh"

namespace spt::cuda::detail {

void forward(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
             const void* v, void* out, float* lse) {
  if (g.tensor_cores) return forward_tc(g, layout, dtype, q, k, v, out, lse);
  switch (dtype) {
    case DType::f32: return simt_forward<float>(g, layout, q, k, v, out, lse);
    case DType::bf16: return simt_forward<__nv_bfloat16>(g, layout, q, k, v, out, lse);
    case DType::f16: return simt_forward<__half>(g, layout, q, k, v, out, lse);
  }
}

}  // namespace spt::cuda::detail
