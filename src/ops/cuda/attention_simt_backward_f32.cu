// The SIMT attention backward's f32 instances (attention_simt_backward.cuh).
#include "ops/cuda/attention_simt_backward.cuh"

namespace spt::cuda::detail {

template void simt_gradients<float>(const LaunchGeometry&, const LayoutView&, const BackwardArgs<float>&);

}  // namespace spt::cuda::detail
