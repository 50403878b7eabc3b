// CUDA kernels of the spt_torch ops (schemas in ops.cpp): spt's CUDA attention entry points
// (spt::cuda, src/ops/cuda/attention_plan.h), whose selector picks the kernels; the call runs on
// PyTorch's current stream with its scratch from PyTorch's allocator, and does not
// synchronize the host, so it can be captured in a CUDA graph. The device plan of each
// (pattern, layer, T, device, deterministic) is built on its first call and kept: build it
// (run the op once) before capturing a graph.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "op_args.h"
#include "ops/cuda/attention_plan.h"

namespace spt_torch {
namespace {

using spt::cuda::DType;

constexpr int kPlanBlock = 64;  // the block size spt's own CUDA model plans with

DType dtype_of(const at::Tensor& q) {
  const at::ScalarType type = q.scalar_type();
  TORCH_CHECK_TYPE(type == at::kFloat || type == at::kBFloat16 || type == at::kHalf, "spt_torch: CUDA tensors of dtype ",
                   type, " are not supported: use bfloat16 or float16 (fast kernels) or float32 (reference kernels)");
  return type == at::kFloat ? DType::f32 : type == at::kBFloat16 ? DType::bf16 : DType::f16;
}

using PlanKey = std::tuple<std::string, int64_t, int64_t, int64_t, std::string, int64_t, int64_t, int64_t, int, bool>;

const spt::cuda::DeviceAttentionPlan& cached_plan(const PatternArgs& args, const spt::AttentionShape& shape,
                                                  int device, bool deterministic, cudaStream_t stream) {
  static std::mutex mutex;
  static std::map<PlanKey, std::unique_ptr<spt::cuda::DeviceAttentionPlan>> plans;
  const PlanKey key{args.pattern, args.stride, args.summary, args.summary_blocks, args.mode,
                    args.layer,   shape.H,     shape.T,      device,              deterministic};
  const std::lock_guard<std::mutex> lock(mutex);
  auto found = plans.find(key);
  if (found != plans.end()) return *found->second;
  const spt::Pattern pattern = make_pattern(args, shape.H);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  TORCH_CHECK(cudaStreamIsCapturing(stream, &capture) == cudaSuccess, "spt_torch: cudaStreamIsCapturing failed");
  TORCH_CHECK(capture == cudaStreamCaptureStatusNone, "spt_torch: the attention plan of ", pattern.describe(),
              ", layer ", args.layer, ", T = ", shape.T, " is not built yet and cannot be built while a CUDA graph is "
              "being captured: run the op once with these arguments before capturing");
  auto plan = std::make_unique<spt::cuda::DeviceAttentionPlan>();
  translate_errors("spt_torch attention plan", [&] {
    *plan = spt::cuda::make_device_plan(pattern, static_cast<int>(args.layer), shape.T, kPlanBlock);
  });
  plan->deterministic = deterministic;
  return *plans.emplace(key, std::move(plan)).first->second;
}

// Scratch of one call from PyTorch's caching allocator (a graph's private pool under capture).
at::Tensor workspace(const spt::cuda::DeviceAttentionPlan& plan, const spt::AttentionShape& shape, DType dtype,
                     bool backward, const at::Tensor& like) {
  size_t bytes = 0;
  translate_errors("spt_torch attention", [&] { bytes = spt::cuda::attention_workspace_bytes(plan, shape, dtype, backward); });
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

// Says once per process when a call runs off the pattern-specific kernels (fp32, half-width
// q/k, other head dims), so that a slow path is never taken silently.
void warn_if_slow(const spt::cuda::DeviceAttentionPlan& plan, const spt::AttentionShape& shape, DType dtype) {
  const std::string path = spt::cuda::attention_path(plan, shape, dtype);
  if (path != "fast") {
    TORCH_WARN_ONCE("spt_torch: ", spt::cuda::dtype_name(dtype), " attention with Dk = ", shape.Dk, ", Dv = ", shape.Dv,
                    " runs on spt's '", path, "' kernels, not the fast pattern-specific ones (those take bfloat16 or "
                    "float16 with Dk = Dv in {32, 64, 128})");
  }
}

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                std::string pattern, int64_t stride, int64_t summary,
                                                int64_t summary_blocks, std::string mode, int64_t layer,
                                                bool deterministic) {
  const spt::AttentionShape shape = checked_shape(q, k, v);
  const DType dtype = dtype_of(q);
  const c10::cuda::CUDAGuard guard(q.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(q.get_device()).stream();
  const PatternArgs args{pattern, stride, summary, summary_blocks, mode, layer};
  const auto& plan = cached_plan(args, shape, q.get_device(), deterministic, stream);
  at::Tensor out = new_output(v, shape.Dv);
  at::Tensor lse = at::empty({shape.B, shape.H, shape.T}, q.options().dtype(at::kFloat));
  warn_if_slow(plan, shape, dtype);
  at::Tensor scratch = workspace(plan, shape, dtype, false, q);
  translate_errors("spt_torch attention_forward", [&] {
    spt::cuda::attention_forward(plan, shape, dtype, q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                                 lse.data_ptr<float>(), stream, scratch.data_ptr(), scratch.numel());
  });
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(const at::Tensor& dout, const at::Tensor& q,
                                                             const at::Tensor& k, const at::Tensor& v,
                                                             const at::Tensor& out, const at::Tensor& lse,
                                                             std::string pattern, int64_t stride, int64_t summary,
                                                             int64_t summary_blocks, std::string mode, int64_t layer,
                                                             bool deterministic) {
  const spt::AttentionShape shape = checked_shape(q, k, v);
  const DType dtype = dtype_of(q);
  check_backward_inputs(dout, out, lse, q, shape);
  const c10::cuda::CUDAGuard guard(q.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(q.get_device()).stream();
  const PatternArgs args{pattern, stride, summary, summary_blocks, mode, layer};
  const auto& plan = cached_plan(args, shape, q.get_device(), deterministic, stream);
  at::Tensor dq, dk, dv;
  std::tie(dq, dk, dv) = new_gradients(q, k, v);
  at::Tensor scratch = workspace(plan, shape, dtype, true, q);
  translate_errors("spt_torch attention_backward", [&] {
    spt::cuda::attention_backward(plan, shape, dtype, q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                                  lse.data_ptr<float>(), dout.data_ptr(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(),
                                  stream, scratch.data_ptr(), scratch.numel());
  });
  return {dq, dk, dv};
}

std::string path_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, std::string pattern,
                      int64_t stride, int64_t summary, int64_t summary_blocks, std::string mode, int64_t layer) {
  const spt::AttentionShape shape = checked_shape(q, k, v);
  const DType dtype = dtype_of(q);
  const c10::cuda::CUDAGuard guard(q.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(q.get_device()).stream();
  const auto& plan =
      cached_plan({pattern, stride, summary, summary_blocks, mode, layer}, shape, q.get_device(), false, stream);
  std::string path;
  translate_errors("spt_torch attention_path", [&] { path = spt::cuda::attention_path(plan, shape, dtype); });
  return path;
}

}  // namespace
}  // namespace spt_torch

TORCH_LIBRARY_IMPL(spt, CUDA, m) {
  m.impl("attention_forward", &spt_torch::forward_cuda);
  m.impl("attention_backward", &spt_torch::backward_cuda);
  m.impl("attention_path", &spt_torch::path_cuda);
}
