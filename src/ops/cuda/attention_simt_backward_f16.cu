// The SIMT attention backward's f16 instances (attention_simt_backward.cuh).
#include "ops/cuda/attention_simt_backward.cuh"

namespace spt::cuda::detail {

template void simt_gradients<__half>(const LaunchGeometry&, const LayoutView&, const BackwardArgs<__half>&);

}  // namespace spt::cuda::detail
