// The spt_torch ops: their schemas and the CPU kernels (spt's CPU oracle, spt::cpu).
//   spt::attention_forward(q, k, v, pattern args, deterministic) -> (out, lse)
//   spt::attention_backward(dout, q, k, v, out, lse, pattern args, deterministic) -> (dq, dk, dv)
//   spt::attention_path(q, k, v, pattern args) -> which kernels serve the call
// Shapes: q, k (B, H, T, Dk), v (B, H, T, Dv) over (B, T, H, D) memory (op_args.cpp);
// out (B, H, T, Dv) over packed (B, T, H, Dv) memory; lse (B, H, T) fp32, natural log of
// the softmax denominators of scores scaled by 1 / sqrt(Dk). dq, dk, dv have the strides of
// q, k, v. Autograd and the fake (meta) kernels are registered from Python (spt_torch/ops.py).
#include <torch/library.h>
#include <torch/version.h>

#include "op_args.h"

namespace spt_torch {
namespace {

void check_cpu_dtype(const at::Tensor& q) {
  TORCH_CHECK_TYPE(q.scalar_type() == at::kFloat, "spt_torch: the CPU path takes float32 tensors, got ",
                   q.scalar_type(), ": call .float() on q, k, v (bfloat16 and float16 run on CUDA)");
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               std::string pattern, int64_t stride, int64_t summary,
                                               int64_t summary_blocks, std::string mode, int64_t layer,
                                               bool /*deterministic: the CPU path always is*/) {
  const spt::AttentionShape shape = checked_shape(q, k, v);
  check_cpu_dtype(q);
  const spt::Pattern p = make_pattern({pattern, stride, summary, summary_blocks, mode, layer}, shape.H);
  at::Tensor out = new_output(v, shape.Dv);
  at::Tensor lse = at::empty({shape.B, shape.H, shape.T}, q.options().dtype(at::kFloat));
  translate_errors("spt_torch attention_forward", [&] {
    spt::cpu::attention_forward(spt::make_plan(p, static_cast<int>(layer)), shape, q.data_ptr<float>(),
                                k.data_ptr<float>(), v.data_ptr<float>(), out.data_ptr<float>(), lse.data_ptr<float>());
  });
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(const at::Tensor& dout, const at::Tensor& q,
                                                            const at::Tensor& k, const at::Tensor& v,
                                                            const at::Tensor& out, const at::Tensor& lse,
                                                            std::string pattern, int64_t stride, int64_t summary,
                                                            int64_t summary_blocks, std::string mode, int64_t layer,
                                                            bool /*deterministic*/) {
  const spt::AttentionShape shape = checked_shape(q, k, v);
  check_cpu_dtype(q);
  check_backward_inputs(dout, out, lse, q, shape);
  const spt::Pattern p = make_pattern({pattern, stride, summary, summary_blocks, mode, layer}, shape.H);
  at::Tensor dq, dk, dv;
  std::tie(dq, dk, dv) = new_gradients(q, k, v);
  translate_errors("spt_torch attention_backward", [&] {
    spt::cpu::attention_backward(spt::make_plan(p, static_cast<int>(layer)), shape, q.data_ptr<float>(),
                                 k.data_ptr<float>(), v.data_ptr<float>(), out.data_ptr<float>(),
                                 lse.data_ptr<float>(), dout.data_ptr<float>(), dq.data_ptr<float>(),
                                 dk.data_ptr<float>(), dv.data_ptr<float>());
  });
  return {dq, dk, dv};
}

std::string path_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, std::string pattern,
                     int64_t stride, int64_t summary, int64_t summary_blocks, std::string mode, int64_t layer) {
  const spt::AttentionShape shape = checked_shape(q, k, v);
  check_cpu_dtype(q);
  make_pattern({pattern, stride, summary, summary_blocks, mode, layer}, shape.H);
  return "cpu";
}

}  // namespace
}  // namespace spt_torch

// torch.compile may re-lay out a custom op's inputs unless told that their stride order
// matters (it does here: spt reads (B, T, H, D) memory in place); older PyTorch neither
// compiles nor has the tag.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SPT_TORCH_LAYOUT_TAGS , {at::Tag::needs_fixed_stride_order}
#else
#define SPT_TORCH_LAYOUT_TAGS
#endif

TORCH_LIBRARY(spt, m) {
  m.def(
      "attention_forward(Tensor q, Tensor k, Tensor v, str pattern, int stride, int summary, int summary_blocks, "
      "str mode, int layer, bool deterministic) -> (Tensor, Tensor)" SPT_TORCH_LAYOUT_TAGS);
  m.def(
      "attention_backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, str pattern, "
      "int stride, int summary, int summary_blocks, str mode, int layer, bool deterministic) "
      "-> (Tensor, Tensor, Tensor)" SPT_TORCH_LAYOUT_TAGS);
  m.def(
      "attention_path(Tensor q, Tensor k, Tensor v, str pattern, int stride, int summary, int summary_blocks, "
      "str mode, int layer) -> str");
}

TORCH_LIBRARY_IMPL(spt, CPU, m) {
  m.impl("attention_forward", &spt_torch::forward_cpu);
  m.impl("attention_backward", &spt_torch::backward_cpu);
  m.impl("attention_path", &spt_torch::path_cpu);
}

#ifndef SPT_TORCH_CUDA
// Without spt's CUDA backend, CUDA tensors are refused with the way to get it, rather
// than copied to the CPU.
namespace spt_torch {
namespace {
constexpr const char* kNoCuda =
    "spt_torch was built without spt's CUDA backend, so it takes CPU float32 tensors only: rebuild with "
    "-DSPT_CUDA=ON against a CUDA build of PyTorch, or move q, k, v to the CPU";
std::tuple<at::Tensor, at::Tensor> forward_no_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, std::string,
                                                   int64_t, int64_t, int64_t, std::string, int64_t, bool) {
  TORCH_CHECK_NOT_IMPLEMENTED(false, kNoCuda);
  return {};
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_no_cuda(const at::Tensor&, const at::Tensor&,
                                                                const at::Tensor&, const at::Tensor&,
                                                                const at::Tensor&, const at::Tensor&, std::string,
                                                                int64_t, int64_t, int64_t, std::string, int64_t, bool) {
  TORCH_CHECK_NOT_IMPLEMENTED(false, kNoCuda);
  return {};
}
std::string path_no_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, std::string, int64_t, int64_t,
                         int64_t, std::string, int64_t) {
  TORCH_CHECK_NOT_IMPLEMENTED(false, kNoCuda);
  return {};
}
}  // namespace
}  // namespace spt_torch

TORCH_LIBRARY_IMPL(spt, CUDA, m) {
  m.impl("attention_forward", &spt_torch::forward_no_cuda);
  m.impl("attention_backward", &spt_torch::backward_no_cuda);
  m.impl("attention_path", &spt_torch::path_no_cuda);
}
#endif
