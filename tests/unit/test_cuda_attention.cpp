// CUDA sparse attention against the CPU op (spt::cpu::attention_forward/backward) on
// random inputs, for every pattern and combination mode, fp32, bf16 and fp16, with equal
// query/key and value head dims and with half-width queries and keys (Dk = Dv / 2). bf16
// and fp16 with Dk = Dv run the pattern-specific kernels ("fast") unless a case turns them
// off; then BS 64 or 128 runs the block-layout tensor-core kernels. Everything else (fp32,
// Dk = Dv / 2, smaller BS) runs the SIMT kernels (cuda::attention_path says which; a test
// checks it in test_cuda_attention_paths.cpp, which also compares the paths).
//
// Tolerances. fp32: both sides round every product and sum once; the error of a score,
// an output or a gradient grows like the square root of the number of terms (D from a
// dot product, up to T from a sum over keys or queries) times the magnitude of the terms,
// which is about 1 here (unit normal inputs, probabilities summing to 1). The allowed L2
// error is 32 u sqrt(2D + T) times sqrt(sum(want^2 + 1)) (u = 2^-24), four times that for
// gradients, whose summands come from two dot products and a difference.
// bf16 / fp16: both sides see the same rounded inputs and accumulate in fp32, and the GPU
// rounds its outputs once. The SIMT kernels' error is then at most the error of rounding the
// CPU result to the type (plus the fp32 term); the tensor-core kernels also round the
// probabilities (and dS) to the type before their second product, which adds an error of
// the same size as the output rounding: about twice the rounding error in all. Three
// times that rounding error is allowed (k = 2 per rounding step taken).
// Every check is made per tensor and per (batch row, head, block of BS positions).
#include <gtest/gtest.h>

#ifdef SPT_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/attention.h"
#include "ops/cuda/attention_plan.h"
#include "cuda_test_util.h"

namespace spt {
namespace {

using cuda::DType;

using namespace cuda_test;


struct CudaCase {
  PatternSpec spec;
  int layer = 0;
  int B = 1;
  int64_t T = 1;
  int D = 64;
  int block = 64;
  bool fused = true;  // q, k, v in one (B, T, 3 H D + pad) buffer; otherwise three packed ones
  DType dtype = DType::f32;
  bool aligned_rows = false;  // fused: pads of 8 (16-byte aligned rows) instead of odd ones
  int Dv = 0;                 // value/output head dim; 0: Dv = D (D is always Dk)
  bool fast = true;           // 2-byte types: the pattern-specific kernels (else the block-layout ones)
};

int value_dim(const CudaCase& c) { return c.Dv > 0 ? c.Dv : c.D; }

std::string describe(const CudaCase& c) {
  return message(Pattern(c.spec).describe(), ", layer ", c.layer, ", B ", c.B, ", T ", c.T, ", Dk ", c.D, ", Dv ", value_dim(c), ", BS ",
                 c.block, c.fused ? (c.aligned_rows ? ", fused aligned" : ", fused") : ", packed", ", ",
                 name(c.dtype), c.dtype != DType::f32 && !c.fast ? ", block-layout kernels" : "");
}

// Where one (B, T, H, D) tensor lives inside a flat buffer.
struct View {
  int64_t offset;
  int64_t stride;
  int dim;  // head dim: Dk for q, k; Dv for v, out
  int64_t at(int64_t position, int h, int d) const { return offset + position * stride + int64_t{h} * dim + d; }
};

// Compares got against want per tensor and per group, with the tolerance of the header.
class Comparison {
 public:
  Comparison(std::string what, int64_t groups, double fp32_rel, bool rounded_output)
      : what_(std::move(what)), fp32_rel_(fp32_rel), rounded_(rounded_output), sums_(groups + 1) {}

  void add(int64_t group, double got, double want, DType dtype) {
    if (std::isinf(want) && want < 0) {
      if (!(std::isinf(got) && got < 0)) fail(message("group ", group, ": expected -inf, got ", got));
      return;
    }
    if (!std::isfinite(got)) {
      fail(message("group ", group, ": non-finite value ", got, " where ", want, " was expected"));
      return;
    }
    const double round = rounded_ ? round_to(dtype, static_cast<float>(want)) - want : 0.0;
    for (Sums* s : {&sums_[group], &sums_.back()}) {
      s->err2 += (got - want) * (got - want);
      s->scale2 += want * want + 1.0;
      s->round2 += round * round;
    }
  }

  // Reports every failure; `group_name` turns a group index into words.
  template <typename GroupName>
  void check(const std::string& context, GroupName group_name) {
    for (const std::string& f : failures_) ADD_FAILURE() << what_ << " (" << context << "): " << f;
    int reported = 0;
    for (size_t g = 0; g < sums_.size(); ++g) {
      const Sums& s = sums_[g];
      const double allowed = fp32_rel_ * std::sqrt(s.scale2) + 3.0 * std::sqrt(s.round2);
      const double err = std::sqrt(s.err2);
      if (err <= allowed) continue;
      if (reported++ < 5)
        ADD_FAILURE() << what_ << " (" << context << "): "
                      << (g + 1 == sums_.size() ? std::string("whole tensor") : group_name(static_cast<int64_t>(g)))
                      << " L2 error " << err << " exceeds " << allowed;
    }
  }

 private:
  struct Sums {
    double err2 = 0, scale2 = 0, round2 = 0;
  };
  void fail(const std::string& text) {
    if (failures_.size() < 5) failures_.push_back(text);
  }
  std::string what_;
  double fp32_rel_;
  bool rounded_;
  std::vector<Sums> sums_;
  std::vector<std::string> failures_;
};

class CudaAttentionCase {
 public:
  explicit CudaAttentionCase(const CudaCase& c, uint64_t seed)
      : c_(c), pattern_(c.spec), plan_(make_plan(pattern_, c.layer)), H_(c.spec.heads),
        Wk_(int64_t{H_} * c.D), Wv_(int64_t{H_} * value_dim(c)) {
    shape_.B = c.B;
    shape_.T = c.T;
    shape_.H = H_;
    shape_.Dk = c.D;
    shape_.Dv = value_dim(c);
    rows_ = int64_t{c.B} * c.T;
    if (c.fused) {
      // Pad columns belong to nobody and must stay untouched; odd pads leave rows unaligned.
      const int64_t stride = 2 * Wk_ + Wv_ + (c.aligned_rows ? 8 : 5);
      shape_.q_stride = shape_.k_stride = shape_.v_stride = stride;
      views_[0] = {0, stride, c.D};
      views_[1] = {Wk_, stride, c.D};
      views_[2] = {2 * Wk_, stride, value_dim(c)};
      qkv_size_ = static_cast<size_t>(rows_ * stride);
      shape_.out_stride = Wv_ + (c.aligned_rows ? 8 : 3);
    } else {
      const int64_t region = rows_ * std::max(Wk_, Wv_) + static_cast<int64_t>(kGuard);  // a guard gap after each
      for (int t = 0; t < 3; ++t) views_[t] = {t * region, width(t), static_cast<int>(width(t) / H_)};
      qkv_size_ = static_cast<size_t>(3 * region);
      shape_.out_stride = Wv_;
    }
    out_size_ = static_cast<size_t>(rows_ * shape_.out_stride);
    lse_size_ = static_cast<size_t>(int64_t{c.B} * H_ * c.T);
    qkv_.resize(qkv_size_);
    for (size_t e = 0; e < qkv_size_; ++e) qkv_[e] = round_to(c.dtype, normal01(rng_key(seed, 1), e));
    dout_.resize(out_size_);
    for (size_t e = 0; e < out_size_; ++e) dout_[e] = round_to(c.dtype, normal01(rng_key(seed, 2), e));
  }

  void run() {
    const std::string context = describe(c_);
    SCOPED_TRACE(context);
    cuda::DeviceAttentionPlan device_plan = cuda::make_device_plan(pattern_, c_.layer, c_.T, c_.block);
    device_plan.fast = c_.fast;
    const float* q = qkv_.data() + views_[0].offset;
    const float* k = qkv_.data() + views_[1].offset;
    const float* v = qkv_.data() + views_[2].offset;

    // Forward.
    std::vector<float> out_ref(out_size_, 0.0f), lse_ref(lse_size_);
    cpu::attention_forward(plan_, shape_, q, k, v, out_ref.data(), lse_ref.data());
    DeviceArray qkv(c_.dtype, qkv_size_), out(c_.dtype, out_size_ + kGuard), lse(DType::f32, lse_size_ + kGuard);
    qkv.upload(qkv_);
    out.fill_sentinel();
    lse.fill_sentinel();
    auto device_ptr = [&](DeviceArray& a, int t) {
      return static_cast<unsigned char*>(a.data()) + views_[t].offset * static_cast<int64_t>(a.element_size());
    };
    cuda::attention_forward(device_plan, shape_, c_.dtype, device_ptr(qkv, 0), device_ptr(qkv, 1),
                            device_ptr(qkv, 2), out.data(), lse.floats());
    SPT_CUDA_CHECK(cudaDeviceSynchronize());
    const DeviceArray::Host out_got = out.download(), lse_got = lse.download();

    const double fwd_rel = 32.0 * kUnitRoundoff * std::sqrt(static_cast<double>(c_.D + value_dim(c_) + c_.T));
    const View out_view{0, shape_.out_stride, value_dim(c_)};
    compare_heads("out", out_got, out_ref, out_view, fwd_rel, true, context);
    Comparison lse_cmp("lse", groups(), fwd_rel, false);
    for (int b = 0; b < c_.B; ++b)
      for (int h = 0; h < H_; ++h)
        for (int64_t t = 0; t < c_.T; ++t) {
          const size_t e = static_cast<size_t>((int64_t{b} * H_ + h) * c_.T + t);
          lse_cmp.add(group(b, h, t), lse_got.value(e), lse_ref[e], c_.dtype);
        }
    lse_cmp.check(context, [&](int64_t g) { return group_name(g); });
    expect_untouched("out", out_got, out_size_, [&](size_t e) {
      return static_cast<int64_t>(e % shape_.out_stride) >= Wv_;
    });
    expect_untouched("lse", lse_got, lse_size_, [](size_t) { return false; });

    // Backward, from the CPU's forward results (out rounded as the GPU would store it),
    // so both sides differentiate the same numbers.
    std::vector<float> out_in(out_ref);
    for (float& x : out_in) x = round_to(c_.dtype, x);
    std::vector<float> grads_ref(qkv_size_, 0.0f);
    cpu::attention_backward(plan_, shape_, q, k, v, out_in.data(), lse_ref.data(), dout_.data(),
                            grads_ref.data() + views_[0].offset, grads_ref.data() + views_[1].offset,
                            grads_ref.data() + views_[2].offset);
    DeviceArray out_dev(c_.dtype, out_size_), dout_dev(c_.dtype, out_size_), lse_dev(DType::f32, lse_size_);
    out_dev.upload(out_in);
    dout_dev.upload(dout_);
    lse_dev.upload(lse_ref);
    DeviceArray grads(c_.dtype, qkv_size_ + kGuard);
    grads.fill_sentinel();
    cuda::attention_backward(device_plan, shape_, c_.dtype, device_ptr(qkv, 0), device_ptr(qkv, 1),
                             device_ptr(qkv, 2), out_dev.data(), lse_dev.floats(), dout_dev.data(),
                             device_ptr(grads, 0), device_ptr(grads, 1), device_ptr(grads, 2));
    SPT_CUDA_CHECK(cudaDeviceSynchronize());
    const DeviceArray::Host grads_got = grads.download();
    const double bwd_rel = 4.0 * fwd_rel;
    const char* names[3] = {"dq", "dk", "dv"};
    for (int t = 0; t < 3; ++t) compare_heads(names[t], grads_got, grads_ref, views_[t], bwd_rel, true, context);
    expect_untouched("dq/dk/dv", grads_got, qkv_size_, [&](size_t e) { return owner(static_cast<int64_t>(e)) < 0; });
  }

 private:
  int64_t width(int tensor) const { return tensor == 2 ? Wv_ : Wk_; }  // q, k, v
  int64_t blocks() const { return (c_.T + c_.block - 1) / c_.block; }
  int64_t groups() const { return int64_t{c_.B} * H_ * blocks(); }
  int64_t group(int b, int h, int64_t t) const { return (int64_t{b} * H_ + h) * blocks() + t / c_.block; }
  std::string group_name(int64_t g) const {
    const int64_t block = g % blocks(), bh = g / blocks();
    return message("batch row ", bh / H_, ", head ", bh % H_, ", block ", block);
  }

  // Which of q, k, v owns flat element e of the qkv buffer, or -1 for padding and gaps.
  int owner(int64_t e) const {
    for (int t = 0; t < 3; ++t) {
      const int64_t rel = e - views_[t].offset;
      if (rel < 0) continue;
      const int64_t position = rel / views_[t].stride, column = rel % views_[t].stride;
      if (position < rows_ && column < width(t)) return t;
    }
    return -1;
  }

  // Groups are (batch row, head, block of positions): query blocks for out, dq; key blocks for dk, dv.
  void compare_heads(const char* what, const DeviceArray::Host& got, const std::vector<float>& want, View view,
                     double rel, bool rounded, const std::string& context) {
    Comparison cmp(what, groups(), rel, rounded);
    for (int b = 0; b < c_.B; ++b)
      for (int64_t t = 0; t < c_.T; ++t)
        for (int h = 0; h < H_; ++h)
          for (int d = 0; d < view.dim; ++d) {
            const int64_t e = view.at(int64_t{b} * c_.T + t, h, d);
            cmp.add(group(b, h, t), got.value(static_cast<size_t>(e)), want[static_cast<size_t>(e)], c_.dtype);
          }
    cmp.check(context, [&](int64_t g) { return group_name(g); });
  }

  // Elements [0, size) for which `foreign` holds, and the guard after them, must keep the sentinel.
  template <typename Foreign>
  void expect_untouched(const char* what, const DeviceArray::Host& got, size_t size, Foreign foreign) {
    int reported = 0;
    for (size_t e = 0; e < size + kGuard; ++e) {
      if (e < size && !foreign(e)) continue;
      if (!got.is_sentinel(e) && reported++ < 5)
        ADD_FAILURE() << what << ": element " << e << (e >= size ? " (guard)" : " (not owned)") << " was written";
    }
  }

  CudaCase c_;
  Pattern pattern_;
  AttentionPlan plan_;
  int H_;
  int64_t Wk_, Wv_;  // H * Dk (q, k), H * Dv (v, out)
  int64_t rows_ = 0;
  AttentionShape shape_;
  View views_[3]{};
  size_t qkv_size_ = 0, out_size_ = 0, lse_size_ = 0;
  std::vector<float> qkv_, dout_;
};

uint64_t next_seed() {
  static uint64_t seed = 1000;
  return ++seed;
}

void run_case(const CudaCase& c) { CudaAttentionCase(c, next_seed()).run(); }

TEST(CudaAttention, EveryPatternAndMode) {
  SPT_REQUIRE_CUDA_DEVICE();
  std::vector<PatternSpec> specs = {{PatternKind::dense, 1, 1, 1, CombineMode::merged, 2},
                                    {PatternKind::local, 20, 1, 1, CombineMode::merged, 2},
                                    {PatternKind::local, 150, 1, 1, CombineMode::merged, 2}};
  for (CombineMode mode : {CombineMode::merged, CombineMode::interleaved, CombineMode::heads}) {
    specs.push_back({PatternKind::strided, 24, 1, 1, mode, 2});
    specs.push_back({PatternKind::fixed, 32, 8, 1, mode, 2});
    specs.push_back({PatternKind::fixed, 32, 8, 2, mode, 2});
  }
  for (DType dtype : {DType::f32, DType::bf16, DType::f16})
    for (const PatternSpec& spec : specs)
      for (int layer : {0, 1}) {
        if (layer == 1 && spec.mode != CombineMode::interleaved) continue;
        for (int64_t T : {1, 200}) run_case({spec, layer, 2, T, 64, 64, true, dtype});
        if (dtype != DType::f32) run_case({spec, layer, 1, 333, 64, 64, true, dtype, true});
      }
}

TEST(CudaAttention, HeadDimsAndBlockSizes) {
  SPT_REQUIRE_CUDA_DEVICE();
  const PatternSpec fixed{PatternKind::fixed, 48, 8, 2, CombineMode::merged, 2};
  const PatternSpec strided{PatternKind::strided, 24, 1, 1, CombineMode::heads, 2};
  for (DType dtype : {DType::f32, DType::bf16, DType::f16})
    for (int D : {32, 64, 128})
      for (int block : {16, 32, 64, 128}) {
        run_case({fixed, 0, 2, 200, D, block, true, dtype});
        run_case({strided, 0, 1, 200, D, block, false, dtype});
        if (dtype == DType::f32) continue;
        run_case({fixed, 0, 2, 200, D, block, true, dtype, false, 0, false});
        run_case({strided, 0, 1, 200, D, block, false, dtype, false, 0, false});
        if (block >= 64) run_case({fixed, 0, 1, 200, D, block, true, dtype, true, 0, false});
      }
}

TEST(CudaAttention, OneHeadPackedLayout) {
  SPT_REQUIRE_CUDA_DEVICE();
  const std::vector<PatternSpec> specs = {{PatternKind::dense, 1, 1, 1, CombineMode::merged, 1},
                                          {PatternKind::local, 7, 1, 1, CombineMode::merged, 1},
                                          {PatternKind::strided, 16, 1, 1, CombineMode::merged, 1},
                                          {PatternKind::fixed, 16, 4, 1, CombineMode::merged, 1}};
  for (DType dtype : {DType::f32, DType::bf16, DType::f16})
    for (const PatternSpec& spec : specs)
      for (int64_t T : {1, 65, 200})
        for (int block : {32, 64}) run_case({spec, 0, 2, T, 32, block, false, dtype});
}

// Many key blocks per row: the online rescaling runs across tiles and block sizes.
TEST(CudaAttention, LongSequences) {
  SPT_REQUIRE_CUDA_DEVICE();
  const PatternSpec dense{PatternKind::dense, 1, 1, 1, CombineMode::merged, 1};
  const PatternSpec fixed{PatternKind::fixed, 128, 32, 1, CombineMode::merged, 2};
  const PatternSpec strided{PatternKind::strided, 128, 1, 1, CombineMode::merged, 2};
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    run_case({dense, 0, 1, 1100, 64, 64, true, dtype});
    run_case({fixed, 0, 1, 1000, 64, 128, true, dtype});
    run_case({strided, 0, 1, 1000, 128, 64, false, dtype});
  }
  for (DType dtype : {DType::bf16, DType::f16}) {
    run_case({dense, 0, 1, 1100, 128, 128, true, dtype, true});
    run_case({strided, 0, 1, 1000, 32, 128, true, dtype, true});
    run_case({dense, 0, 1, 1100, 128, 128, true, dtype, true, 0, false});
    run_case({fixed, 0, 1, 1000, 64, 128, true, dtype, false, 0, false});
    run_case({strided, 0, 1, 1000, 32, 128, true, dtype, true, 0, false});
  }
}

TEST(CudaAttention, RepeatedCallsAreBitwiseIdentical) {
  SPT_REQUIRE_CUDA_DEVICE();
  const Pattern pattern({PatternKind::strided, 24, 1, 1, CombineMode::merged, 2});
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    AttentionShape shape;
    shape.B = 2;
    shape.T = 300;
    shape.H = 2;
    shape.Dk = shape.Dv = 64;
    const size_t n = static_cast<size_t>(shape.B * shape.T * shape.H * shape.Dk);
    const size_t n_lse = static_cast<size_t>(shape.B * shape.H * shape.T);
    std::vector<float> host(n);
    DeviceArray q(dtype, n), k(dtype, n), v(dtype, n), dout(dtype, n), out(dtype, n), lse(DType::f32, n_lse);
    uint64_t stream = 40;
    for (DeviceArray* a : {&q, &k, &v, &dout}) {
      for (size_t e = 0; e < n; ++e) host[e] = normal01(rng_key(++stream), e);
      a->upload(host);
    }
    cuda::DeviceAttentionPlan plan = cuda::make_device_plan(pattern, 0, shape.T, 64);
    plan.deterministic = true;
    std::vector<DeviceArray::Host> runs;
    for (int repeat = 0; repeat < 2; ++repeat) {
      DeviceArray dq(dtype, n), dk(dtype, n), dv(dtype, n);
      cuda::attention_forward(plan, shape, dtype, q.data(), k.data(), v.data(), out.data(), lse.floats());
      cuda::attention_backward(plan, shape, dtype, q.data(), k.data(), v.data(), out.data(), lse.floats(),
                               dout.data(), dq.data(), dk.data(), dv.data());
      SPT_CUDA_CHECK(cudaDeviceSynchronize());
      for (const DeviceArray* a : {&out, &lse, &dq, &dk, &dv}) runs.push_back(a->download());
    }
    for (size_t t = 0; t < runs.size() / 2; ++t)
      EXPECT_EQ(runs[t].raw, runs[t + runs.size() / 2].raw) << "output " << t << " differs between runs, " << name(dtype);
  }
}

// A caller's workspace of attention_workspace_bytes serves the call as its own pooled
// scratch does, bit for bit; a smaller one is refused.
TEST(CudaAttention, CallerWorkspaceGivesTheSameBits) {
  SPT_REQUIRE_CUDA_DEVICE();
  for (const PatternSpec& spec : {PatternSpec{PatternKind::strided, 24, 1, 1, CombineMode::merged, 2},
                                  PatternSpec{PatternKind::fixed, 32, 8, 2, CombineMode::merged, 2}}) {
    const Pattern pattern(spec);
    SCOPED_TRACE(pattern.describe());
    AttentionShape shape;
    shape.B = 2;
    shape.T = 300;
    shape.H = 2;
    shape.Dk = shape.Dv = 64;
    const DType dtype = DType::bf16;
    const size_t n = static_cast<size_t>(shape.B * shape.T * shape.H * shape.Dk);
    const size_t n_lse = static_cast<size_t>(shape.B * shape.H * shape.T);
    std::vector<float> host(n);
    DeviceArray q(dtype, n), k(dtype, n), v(dtype, n), dout(dtype, n);
    uint64_t stream = 60;
    for (DeviceArray* a : {&q, &k, &v, &dout}) {
      for (size_t e = 0; e < n; ++e) host[e] = normal01(rng_key(++stream), e);
      a->upload(host);
    }
    cuda::DeviceAttentionPlan plan = cuda::make_device_plan(pattern, 0, shape.T, 64);
    plan.deterministic = true;
    const size_t bytes = std::max(cuda::attention_workspace_bytes(plan, shape, dtype, false),
                                  cuda::attention_workspace_bytes(plan, shape, dtype, true));
    ASSERT_GT(bytes, 0u);
    DeviceBuffer<unsigned char> workspace(bytes);
    std::vector<DeviceArray::Host> runs;
    for (int with_workspace = 0; with_workspace < 2; ++with_workspace) {
      void* w = with_workspace ? workspace.data() : nullptr;
      const size_t w_bytes = with_workspace ? bytes : 0;
      DeviceArray out(dtype, n), lse(DType::f32, n_lse), dq(dtype, n), dk(dtype, n), dv(dtype, n);
      cuda::attention_forward(plan, shape, dtype, q.data(), k.data(), v.data(), out.data(), lse.floats(), nullptr, w,
                              w_bytes);
      cuda::attention_backward(plan, shape, dtype, q.data(), k.data(), v.data(), out.data(), lse.floats(),
                               dout.data(), dq.data(), dk.data(), dv.data(), nullptr, w, w_bytes);
      SPT_CUDA_CHECK(cudaDeviceSynchronize());
      for (const DeviceArray* a : {&out, &lse, &dq, &dk, &dv}) runs.push_back(a->download());
    }
    for (size_t t = 0; t < runs.size() / 2; ++t)
      EXPECT_EQ(runs[t].raw, runs[t + runs.size() / 2].raw) << "output " << t << " differs with the workspace";
    DeviceArray out(dtype, n), lse(DType::f32, n_lse), grads(dtype, 3 * n);
    auto* g = static_cast<unsigned char*>(grads.data());
    EXPECT_THROW(cuda::attention_backward(plan, shape, dtype, q.data(), k.data(), v.data(), out.data(), lse.floats(),
                                          dout.data(), g, g + 2 * n, g + 4 * n, nullptr, workspace.data(), 16),
                 Error);
  }
}

TEST(CudaAttention, RejectsBadInputs) {
  SPT_REQUIRE_CUDA_DEVICE();
  const Pattern pattern({PatternKind::dense, 1, 1, 1, CombineMode::merged, 2});
  const cuda::DeviceAttentionPlan plan = cuda::make_device_plan(pattern, 0, 64, 64);
  DeviceBuffer<float> buf(5 * 8192);  // q, k, v, out: (1, 64, 2, 64) each; lse: (1, 2, 64)
  float* p = buf.data();
  float *q = p, *k = p + 8192, *v = p + 2 * 8192, *out = p + 3 * 8192, *lse = p + 4 * 8192;
  std::vector<float> host(5 * 8192);
  for (size_t e = 0; e < host.size(); ++e) host[e] = normal01(77, e);
  buf.upload(host.data(), host.size());
  AttentionShape shape;
  shape.B = 1;
  shape.T = 64;
  shape.H = 2;
  shape.Dk = shape.Dv = 48;
  EXPECT_THROW(cuda::attention_forward(plan, shape, DType::f32, q, k, v, out, lse), Error);  // no D = 48 kernel
  shape.Dk = shape.Dv = 64;
  shape.T = 65;
  EXPECT_THROW(cuda::attention_forward(plan, shape, DType::f32, q, k, v, out, lse), Error);  // plan built for 64
  shape.T = 64;
  shape.H = 3;
  EXPECT_THROW(cuda::attention_forward(plan, shape, DType::f32, q, k, v, out, lse), Error);  // plan has 2 heads
  shape.H = 2;
  EXPECT_THROW(cuda::attention_forward(plan, shape, DType::f32, nullptr, k, v, out, lse), Error);
  EXPECT_THROW(cuda::attention_forward(plan, shape, DType::bf16, q, k, v, reinterpret_cast<char*>(out) + 1, lse),
               Error);  // out misaligned for 2-byte elements
  EXPECT_THROW(cuda::attention_backward(cuda::DeviceAttentionPlan{}, shape, DType::f32, q, k, v, out, lse, out, q,
                                        k, v),
               Error);  // empty plan
  EXPECT_NO_THROW(cuda::attention_forward(plan, shape, DType::f32, q, k, v, out, lse));
  SPT_CUDA_CHECK(cudaDeviceSynchronize());
}

// Half-width q/k (half_qk models): Dk = Dv / 2 runs the SIMT kernels for every dtype,
// against the CPU op, for each compiled pair, block size, pattern and layout.
TEST(CudaAttention, HalfWidthQueriesAndKeys) {
  SPT_REQUIRE_CUDA_DEVICE();
  const PatternSpec fixed{PatternKind::fixed, 48, 8, 2, CombineMode::merged, 2};
  const PatternSpec strided{PatternKind::strided, 24, 1, 1, CombineMode::heads, 2};
  const PatternSpec interleaved{PatternKind::fixed, 32, 8, 1, CombineMode::interleaved, 2};
  for (DType dtype : {DType::f32, DType::bf16, DType::f16})
    for (int Dv : {32, 64, 128}) {
      for (int block : {16, 32, 64, 128}) {
        run_case({fixed, 0, 2, 200, Dv / 2, block, true, dtype, false, Dv});
        run_case({strided, 0, 1, 200, Dv / 2, block, false, dtype, false, Dv});
      }
      run_case({interleaved, 1, 2, 1, Dv / 2, 64, true, dtype, false, Dv});
      run_case({interleaved, 1, 1, 333, Dv / 2, 64, true, dtype, true, Dv});
    }
}

TEST(CudaAttention, HalfWidthLongSequence) {
  SPT_REQUIRE_CUDA_DEVICE();
  const PatternSpec strided{PatternKind::strided, 128, 1, 1, CombineMode::merged, 2};
  for (DType dtype : {DType::f32, DType::bf16}) run_case({strided, 0, 1, 1000, 32, 64, true, dtype, false, 64});
}

TEST(CudaAttention, HalfWidthTakesTheSimtPathAndOtherPairsAreRefused) {
  SPT_REQUIRE_CUDA_DEVICE();
  const Pattern pattern({PatternKind::dense, 1, 1, 1, CombineMode::merged, 2});
  const cuda::DeviceAttentionPlan plan = cuda::make_device_plan(pattern, 0, 64, 64);
  AttentionShape shape;
  shape.B = 1;
  shape.T = 64;
  shape.H = 2;
  shape.Dk = 32;
  shape.Dv = 64;
  EXPECT_STREQ(cuda::attention_path(plan, shape, DType::bf16), "simt");
  DeviceBuffer<float> buf(5 * 8192);  // q, k, v, out: at most (1, 64, 2, 64) each; lse: (1, 2, 64)
  float* p = buf.data();
  float *q = p, *k = p + 8192, *v = p + 2 * 8192, *out = p + 3 * 8192, *lse = p + 4 * 8192;
  std::vector<float> host(5 * 8192);
  for (size_t e = 0; e < host.size(); ++e) host[e] = normal01(78, e);
  buf.upload(host.data(), host.size());
  EXPECT_NO_THROW(cuda::attention_forward(plan, shape, DType::f32, q, k, v, out, lse));
  shape.Dk = 16;  // Dv / 4: no kernel
  EXPECT_THROW(cuda::attention_forward(plan, shape, DType::f32, q, k, v, out, lse), Error);
  shape.Dk = 64;
  shape.Dv = 32;  // Dk > Dv: no kernel
  EXPECT_THROW(cuda::attention_forward(plan, shape, DType::f32, q, k, v, out, lse), Error);
  SPT_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace spt

#else

TEST(CudaAttention, NeedsCudaBuild) { GTEST_SKIP() << "built without CUDA: configure with -DSPT_CUDA=ON on a machine with nvcc"; }

#endif
