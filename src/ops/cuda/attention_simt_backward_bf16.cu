// The SIMT attention backward's bf16 instances (attention_simt_backward.cuh).
#include "ops/cuda/attention_simt_backward.cuh"

namespace spt::cuda::detail {

template void simt_gradients<__nv_bfloat16>(const LaunchGeometry&, const LayoutView&, const BackwardArgs<__nv_bfloat16>&);

}  // namespace spt::cuda::detail
