// Layout the ops accept: q, k, v are (B, H, T, D) like scaled_dot_product_attention's, over
// memory that spt reads in place, (B, T, H, D) with a row stride R >= H * D per position:
//   stride(3) == 1, stride(1) == D, stride(2) == R, stride(0) == T * R.
// That is what x.view(B, T, H, D).transpose(1, 2) gives, also for a slice of a fused
// (B, T, 3C) projection (R = 3C), so the usual model code passes its tensors without a
// copy. Any other layout is refused rather than copied behind the caller's back.
#include "op_args.h"

#include <sstream>

namespace spt_torch {
namespace {

std::string describe(const at::Tensor& t) {
  std::ostringstream out;
  out << "sizes " << t.sizes() << ", strides " << t.strides();
  return out.str();
}

// The row stride R of a (B, H, T, D) tensor over (B, T, H, D) memory, or -1 when it has
// another layout. Size-1 dimensions may have any stride.
int64_t row_stride(const at::Tensor& t) {
  const int64_t B = t.size(0), H = t.size(1), T = t.size(2), D = t.size(3);
  const int64_t R = T > 1 ? t.stride(2) : H * D;
  const bool ok = (D == 1 || t.stride(3) == 1) && (H == 1 || t.stride(1) == D) && R >= H * D &&
                  (B == 1 || t.stride(0) == T * R);
  return ok ? R : -1;
}

void check_layout(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 4, "spt_torch: ", name, " has ", t.dim(), " dimensions (sizes ", t.sizes(),
                    "); pass (B, H, T, D) like scaled_dot_product_attention");
  TORCH_CHECK_VALUE(row_stride(t) > 0, "spt_torch: ", name, " (", describe(t),
                    ") is not laid out as (B, T, H, D) memory with unit stride in D, which spt reads in place: "
                    "pass x.view(B, T, H, D).transpose(1, 2), or ", name, ".transpose(1, 2).contiguous().transpose(1, 2)");
}

}  // namespace

spt::Pattern make_pattern(const PatternArgs& args, int64_t heads) {
  // spt validates the values themselves; these bounds only keep them within its int fields.
  const int64_t limit = int64_t{1} << 30;
  TORCH_CHECK_VALUE(args.stride >= 1 && args.stride <= limit, "spt_torch: stride ", args.stride,
                    " must be in [1, 2^30]");
  TORCH_CHECK_VALUE(args.summary >= 1 && args.summary <= limit, "spt_torch: summary ", args.summary,
                    " must be in [1, stride]");
  TORCH_CHECK_VALUE(args.summary_blocks >= 1 && args.summary_blocks <= limit, "spt_torch: summary_blocks ",
                    args.summary_blocks, " must be at least 1");
  TORCH_CHECK_VALUE(args.layer >= 0 && args.layer <= limit, "spt_torch: layer ", args.layer, " must be in [0, 2^30]");
  try {
    spt::PatternSpec spec;
    spec.kind = spt::parse_pattern_kind(args.pattern);
    spec.mode = spt::parse_combine_mode(args.mode);
    spec.stride = static_cast<int>(args.stride);
    spec.summary = static_cast<int>(args.summary);
    spec.summary_blocks = static_cast<int>(args.summary_blocks);
    spec.heads = static_cast<int>(heads);
    return spt::Pattern(spec);
  } catch (const spt::Error& e) {
    TORCH_CHECK_VALUE(false, "spt_torch: ", e.what());
  }
}

spt::AttentionShape checked_shape(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  check_layout(q, "q");
  check_layout(k, "k");
  check_layout(v, "v");
  TORCH_CHECK_VALUE(k.device() == q.device() && v.device() == q.device(), "spt_torch: q, k, v are on ", q.device(),
                    ", ", k.device(), ", ", v.device(), "; put them on one device");
  TORCH_CHECK_TYPE(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
                   "spt_torch: q, k, v have dtypes ", q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type(),
                   "; give them one dtype");
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2);
  TORCH_CHECK_VALUE(k.size(0) == B && v.size(0) == B && k.size(1) == H && v.size(1) == H && k.size(2) == T &&
                        v.size(2) == T,
                    "spt_torch: q (", q.sizes(), "), k (", k.sizes(), ") and v (", v.sizes(),
                    ") must agree in B, H and T (self-attention: keys and queries are the same positions)");
  TORCH_CHECK_VALUE(k.size(3) == q.size(3), "spt_torch: q has head dim ", q.size(3), " but k has ", k.size(3),
                    "; they must match");
  TORCH_CHECK_VALUE(B >= 1 && H >= 1 && T >= 1 && q.size(3) >= 1 && v.size(3) >= 1, "spt_torch: empty input (q ",
                    q.sizes(), ", v ", v.sizes(), ")");
  TORCH_CHECK_VALUE(B <= (int64_t{1} << 30) && H <= 65535 && T <= (int64_t{1} << 30),
                    "spt_torch: B = ", B, ", H = ", H, ", T = ", T, " exceed the limits B <= 2^30, H <= 65535, T <= 2^30");
  spt::AttentionShape shape;
  shape.B = static_cast<int>(B);
  shape.T = T;
  shape.H = static_cast<int>(H);
  shape.Dk = static_cast<int>(q.size(3));
  shape.Dv = static_cast<int>(v.size(3));
  shape.q_stride = row_stride(q);
  shape.k_stride = row_stride(k);
  shape.v_stride = row_stride(v);
  return shape;
}

void check_packed(const at::Tensor& t, const at::Tensor& q, int64_t D, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 4 && t.size(0) == q.size(0) && t.size(1) == q.size(1) && t.size(2) == q.size(2) &&
                        t.size(3) == D,
                    "spt_torch: ", name, " has sizes ", t.sizes(), ", expected (", q.size(0), ", ", q.size(1), ", ",
                    q.size(2), ", ", D, ")");
  TORCH_CHECK_VALUE(t.device() == q.device() && t.scalar_type() == q.scalar_type(), "spt_torch: ", name, " is ",
                    t.scalar_type(), " on ", t.device(), ", expected ", q.scalar_type(), " on ", q.device());
  TORCH_CHECK_VALUE(row_stride(t) == q.size(1) * D, "spt_torch: ", name, " (", describe(t),
                    ") must be packed (B, T, H, D) memory: pass ", name, ".transpose(1, 2).contiguous().transpose(1, 2)");
}

void check_backward_inputs(const at::Tensor& dout, const at::Tensor& out, const at::Tensor& lse, const at::Tensor& q,
                           const spt::AttentionShape& shape) {
  check_packed(out, q, shape.Dv, "out");
  check_packed(dout, q, shape.Dv, "dout");
  TORCH_CHECK_VALUE(lse.sizes() == at::IntArrayRef({shape.B, shape.H, shape.T}) && lse.is_contiguous() &&
                        lse.scalar_type() == at::kFloat && lse.device() == q.device(),
                    "spt_torch: lse must be contiguous float32 (", shape.B, ", ", shape.H, ", ", shape.T, ") on ",
                    q.device(), ", got ", lse.scalar_type(), " ", lse.sizes(), " on ", lse.device());
}

at::Tensor new_output(const at::Tensor& like, int64_t D) {
  // Strided rather than a transposed view, so that the op returns a tensor of its own (no _base).
  const int64_t H = like.size(1), T = like.size(2);
  return at::empty_strided({like.size(0), H, T, D}, {T * H * D, D, H * D, 1}, like.options());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> new_gradients(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v) {
  return {at::empty_strided(q.sizes(), q.strides(), q.options()), at::empty_strided(k.sizes(), k.strides(), k.options()),
          at::empty_strided(v.sizes(), v.strides(), v.options())};
}

}  // namespace spt_torch
