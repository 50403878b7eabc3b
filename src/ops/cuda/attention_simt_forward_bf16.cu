// The SIMT attention forward's bf16 instances (attention_simt_forward.cuh).
#include "ops/cuda/attention_simt_forward.cuh"

namespace spt::cuda::detail {

template void simt_forward<__nv_bfloat16>(const LaunchGeometry&, const LayoutView&, const void*, const void*,
                               const void*, void*, float*);

}  // namespace spt::cuda::detail
