// Entry points of the CUDA sparse attention: the device plan, input validation, the choice
// of kernels and the calls' scratch. The kernels live in attention_forward.cu and
// attention_backward.cu (SIMT), attention_tc_*.cu (block layout, tensor cores) and
// attention_fast_*.cu (pattern-specific).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/attention_fast.cuh"
#include "ops/cuda/attention_fast_launch.h"
#include "ops/cuda/attention_launch.h"
#include "ops/cuda/attention_plan.h"
#include "pattern/block_layout.h"

namespace spt::cuda {

DeviceAttentionPlan::~DeviceAttentionPlan() {
  if (storage_ != nullptr) cudaFree(storage_);
}

DeviceAttentionPlan::DeviceAttentionPlan(DeviceAttentionPlan&& other) noexcept { *this = std::move(other); }

DeviceAttentionPlan& DeviceAttentionPlan::operator=(DeviceAttentionPlan&& other) noexcept {
  if (this == &other) return *this;
  if (storage_ != nullptr) cudaFree(storage_);
  T = std::exchange(other.T, 0);
  block = std::exchange(other.block, 0);
  heads = std::exchange(other.heads, 0);
  blocks = std::exchange(other.blocks, 0);
  nnz = std::exchange(other.nnz, 0);
  row_begin = std::exchange(other.row_begin, nullptr);
  key_block = std::exchange(other.key_block, nullptr);
  key_full = std::exchange(other.key_full, nullptr);
  col_begin = std::exchange(other.col_begin, nullptr);
  query_block = std::exchange(other.query_block, nullptr);
  query_full = std::exchange(other.query_full, nullptr);
  head_masks = std::exchange(other.head_masks, nullptr);
  tensor_cores = std::exchange(other.tensor_cores, true);
  fast = std::exchange(other.fast, true);
  deterministic = std::exchange(other.deterministic, false);
  parts = std::exchange(other.parts, Parts{});
  storage_ = std::exchange(other.storage_, nullptr);
  return *this;
}

namespace {

detail::DeviceHeadMask device_mask(const HeadMask& m) {
  detail::DeviceHeadMask d{};
  switch (m.kind) {
    case PatternKind::dense: d.kind = detail::kDense; break;
    case PatternKind::local: d.kind = detail::kLocal; break;
    case PatternKind::strided: d.kind = detail::kStrided; break;
    case PatternKind::fixed: d.kind = detail::kFixed; break;
  }
  d.stride = m.stride;
  d.summary_lo = m.summary_lo;
  d.summary_hi = m.summary_hi;
  d.use_a1 = m.use_a1 ? 1 : 0;
  d.use_a2 = m.use_a2 ? 1 : 0;
  return d;
}

// Packs host arrays into one buffer at 16-byte aligned offsets.
class Packer {
 public:
  template <typename T>
  size_t add(const std::vector<T>& values) {
    const size_t at = bytes_.size();
    const size_t size = values.size() * sizeof(T);
    bytes_.resize((at + size + 15) / 16 * 16);
    if (size > 0) std::memcpy(bytes_.data() + at, values.data(), size);
    return at;
  }
  const std::vector<unsigned char>& bytes() const { return bytes_; }

 private:
  std::vector<unsigned char> bytes_;
};

detail::LayoutView layout_view(const DeviceAttentionPlan& plan) {
  return {plan.row_begin,   plan.key_block,  plan.key_full,
          plan.col_begin,   plan.query_block, plan.query_full,
          static_cast<const detail::DeviceHeadMask*>(plan.head_masks),
          static_cast<int>(plan.T), plan.block, static_cast<int>(plan.blocks)};
}

template <typename Pointer>
void check_pointer(Pointer p, size_t alignment, const char* name) {
  SPT_CHECK(p != nullptr, "attention: ", name, " is null");
  SPT_CHECK(reinterpret_cast<uintptr_t>(p) % alignment == 0, "attention: ", name, " = ",
            static_cast<const void*>(p), " is not aligned to its ", alignment, "-byte elements");
}

bool tensor_core_dims(const AttentionShape& resolved, DType dtype) {
  return dtype != DType::f32 && resolved.Dk == resolved.Dv &&
         (resolved.Dk == 32 || resolved.Dk == 64 || resolved.Dk == 128);
}

bool use_fast(const DeviceAttentionPlan& plan, const AttentionShape& resolved, DType dtype) {
  return plan.fast && tensor_core_dims(resolved, dtype);
}

bool use_tensor_cores(const DeviceAttentionPlan& plan, const AttentionShape& resolved, DType dtype) {
  return plan.tensor_cores && (plan.block == 64 || plan.block == 128) && tensor_core_dims(resolved, dtype);
}

detail::LaunchGeometry geometry(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype,
                                CUstream_st* stream) {
  SPT_CHECK(plan.head_masks != nullptr, "attention: the device plan is empty; build it with make_device_plan");
  const AttentionShape s = shape.resolved();
  SPT_CHECK(s.T == plan.T, "attention: the tensors have T = ", s.T, " but the device plan was built for T = ", plan.T,
            "; build a plan for this context length");
  SPT_CHECK(s.H == plan.heads, "attention: the tensors have H = ", s.H, " but the device plan has ", plan.heads,
            " heads");
  const bool dv_compiled = s.Dv == 32 || s.Dv == 64 || s.Dv == 128;
  SPT_CHECK(dv_compiled && (s.Dk == s.Dv || 2 * s.Dk == s.Dv), "attention head dims Dk = ", s.Dk, ", Dv = ", s.Dv,
            " have no CUDA kernel: use Dv in {32, 64, 128} with Dk = Dv or Dk = Dv / 2");
  SPT_CHECK(s.B <= 65535 && s.H <= 65535, "attention: B = ", s.B, " and H = ", s.H,
            " must each be at most 65535 (CUDA grid limit)");
  detail::LaunchGeometry g;
  g.shape = s;
  g.tile = plan.block < 64 ? plan.block : 64;
  g.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.Dk)));
  g.stream = stream;
  g.tensor_cores = use_tensor_cores(plan, s, dtype);
  SPT_CHECK(use_fast(plan, s, dtype) || plan.has_layout(), "attention: this call (", dtype_name(dtype), ", Dk = ", s.Dk,
            ", Dv = ", s.Dv, ") needs the block layout, but the plan was built without it; build it with "
            "make_device_plan(..., with_layout = true)");
  return g;
}

// The current device's multiprocessor count.
int multiprocessors() {
  int device = 0, count = 0;
  SPT_CUDA_CHECK(cudaGetDevice(&device));
  SPT_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

detail::FastLaunch fast_launch(const DeviceAttentionPlan& plan, const detail::LaunchGeometry& g) {
  detail::FastLaunch f;
  f.geometry = g;
  f.masks = static_cast<const detail::DeviceHeadMask*>(plan.head_masks);
  f.parts = plan.parts;
  f.accumulate_dq = !plan.deterministic && detail::fast_accumulates_dq(g.shape.Dk);
  if (f.parts.summary_part) {
    // Enough CTAs for about eight per multiprocessor: the early summary key tiles meet nearly
    // every query, so their query ranges are split.
    const int64_t ctas = f.summary_tiles() * g.shape.B * g.shape.H;
    const int64_t want = 8 * int64_t{multiprocessors()};
    f.slices = static_cast<int>(std::clamp<int64_t>((want + ctas - 1) / std::max<int64_t>(ctas, 1), 1, 8));
  }
  return f;
}

size_t element_size(DType dtype) { return dtype_size(dtype); }

// The scratch of one call: the caller's workspace, or stream-ordered memory released on the
// same stream however the call ends.
class CallScratch {
 public:
  CallScratch(size_t bytes, void* workspace, size_t workspace_bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes == 0) return;
    if (workspace != nullptr) {
      SPT_CHECK(workspace_bytes >= bytes, "attention: the workspace has ", workspace_bytes, " bytes but this call needs ",
                bytes, "; size it with attention_workspace_bytes");
      SPT_CHECK(reinterpret_cast<uintptr_t>(workspace) % 16 == 0, "attention: the workspace ", workspace,
                " is not 16-byte aligned");
      data_ = workspace;
      return;
    }
    SPT_CUDA_CHECK(cudaMallocAsync(&data_, bytes, stream_));
    owned_ = true;
  }
  ~CallScratch() {
    if (owned_) cudaFreeAsync(data_, stream_);
  }
  CallScratch(const CallScratch&) = delete;
  CallScratch& operator=(const CallScratch&) = delete;
  float* floats() { return static_cast<float*>(data_); }

 private:
  void* data_ = nullptr;
  bool owned_ = false;
  cudaStream_t stream_;
};

// Where the pieces of a call's scratch lie, in floats; every piece starts 16-byte aligned.
struct ScratchLayout {
  size_t delta = 0, part_o = 0, part_lse = 0, dq_part = 0, dk_part = 0, dv_part = 0, dq_accum = 0;
  size_t floats = 0;
  size_t take(size_t count) {
    const size_t at = floats;
    floats += (count + 3) / 4 * 4;
    return at;
  }
};

// fast: the call's pattern-specific launch, or null when the call takes another path.
ScratchLayout scratch_layout(const AttentionShape& s, const detail::FastLaunch* fast, bool backward) {
  const size_t rows = static_cast<size_t>(s.B) * s.H * s.T;  // (B, H, T)
  ScratchLayout layout;
  if (backward) layout.delta = layout.take(rows);
  if (fast == nullptr) return layout;
  const DeviceAttentionPlan::Parts& parts = fast->parts;
  if (!backward) {
    if (parts.columns) {
      layout.part_o = layout.take(rows * s.Dk);
      layout.part_lse = layout.take(rows);
    }
    return layout;
  }
  if (parts.columns) {
    layout.dq_part = layout.take(rows * s.Dk);
    layout.dk_part = layout.take(rows * s.Dk);
    layout.dv_part = layout.take(rows * s.Dk);
  } else if (parts.summary_part) {
    const size_t part = static_cast<size_t>(fast->slices) * s.B * s.H * parts.summary_keys * s.Dk;
    layout.dk_part = layout.take(part);
    layout.dv_part = layout.take(part);
  }
  if (fast->accumulate_dq) layout.dq_accum = layout.take(static_cast<size_t>(fast->natural_tiles()) * 64 * s.B * s.H * s.Dk);
  return layout;
}

}  // namespace

namespace detail {

void prepare_kernel(const void* kernel, size_t bytes) {
  // The attributes stay set for the process, so each (device, kernel) is set up once, and
  // again only for a larger size: no driver calls on the hot path.
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, size_t> prepared;  // bytes already allowed
  int device = 0;
  SPT_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  size_t& allowed = prepared[{device, kernel}];
  if (bytes <= allowed && allowed > 0) return;
  int limit = 0;
  SPT_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  SPT_CHECK(bytes <= static_cast<size_t>(limit), "attention kernel needs ", bytes,
            " bytes of shared memory per block but device ", device, " offers ", limit,
            ": use a smaller head dim or block size");
  SPT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  // All of the unified L1 / shared memory as shared memory, so that as many CTAs fit as the
  // registers allow (three fused dK/dV CTAs of 74 KiB each).
  SPT_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
  allowed = std::max<size_t>(bytes, 1);
}

}  // namespace detail

// The calls' scratch (delta, the fast path's partial results) comes from the device's
// stream-ordered pool. By default the pool returns freed memory to the system at every
// synchronization, so the next call maps it again; keeping it makes reuse free.
namespace {
void keep_pool_memory() {
  int device = 0;
  SPT_CUDA_CHECK(cudaGetDevice(&device));
  cudaMemPool_t pool;
  SPT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t keep = UINT64_MAX;
  SPT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
}
}  // namespace

DeviceAttentionPlan make_device_plan(const Pattern& pattern, int layer, int64_t T, int block, bool with_layout) {
  SPT_CHECK(cuda_available(), "no CUDA device is available for the attention plan: run on a GPU machine or use the CPU backend");
  keep_pool_memory();
  SPT_CHECK(T >= 1 && T <= (int64_t{1} << 30), "attention: context T = ", T,
            " is outside the CUDA kernels' range [1, 2^30]");
  const BlockLayout layout = with_layout ? build_block_layout(pattern, layer, T, block) : BlockLayout{};
  const AttentionPlan plan = make_plan(pattern, layer);
  std::vector<detail::DeviceHeadMask> masks;
  DeviceAttentionPlan::Parts parts;
  for (const HeadMask& m : plan.heads) {
    masks.push_back(device_mask(m));
    parts.stride = std::max(m.stride, 1);
    if (m.use_a2 && m.kind == PatternKind::strided) parts.columns = true;
    if (m.use_a2 && m.kind == PatternKind::fixed) {
      parts.summary_part = true;
      const int c = m.summary_hi - m.summary_lo;
      parts.summary_keys =
          std::max(parts.summary_keys, detail::fast::summary_count(static_cast<int>(T), parts.stride, m.summary_lo, c));
    }
  }

  Packer packer;
  const size_t row_begin = packer.add(layout.row_begin);
  const size_t key_block = packer.add(layout.key_block);
  const size_t key_full = packer.add(layout.key_full);
  const size_t col_begin = packer.add(layout.col_begin);
  const size_t query_block = packer.add(layout.query_block);
  const size_t query_full = packer.add(layout.query_full);
  const size_t head_masks = packer.add(masks);
  const std::vector<unsigned char>& bytes = packer.bytes();

  DeviceAttentionPlan device;
  SPT_CUDA_CHECK(cudaMalloc(&device.storage_, bytes.size()));
  const auto base = static_cast<unsigned char*>(device.storage_);
  SPT_CUDA_CHECK(cudaMemcpy(base, bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
  device.T = T;
  device.block = block;
  device.heads = pattern.heads();
  device.head_masks = base + head_masks;
  device.parts = parts;
  if (!with_layout) return device;
  device.blocks = layout.blocks;
  device.nnz = layout.nnz();
  device.row_begin = reinterpret_cast<const int64_t*>(base + row_begin);
  device.key_block = reinterpret_cast<const int32_t*>(base + key_block);
  device.key_full = base + key_full;
  device.col_begin = reinterpret_cast<const int64_t*>(base + col_begin);
  device.query_block = reinterpret_cast<const int32_t*>(base + query_block);
  device.query_full = base + query_full;
  return device;
}

const char* attention_path(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype) {
  const AttentionShape s = shape.resolved();
  if (use_fast(plan, s, dtype)) return "fast";
  return use_tensor_cores(plan, s, dtype) ? "tensor-core" : "simt";
}

size_t attention_workspace_bytes(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype,
                                 bool backward) {
  // Only the shape matters here: a caller sizing its memory for a batch gets the bytes even
  // for a batch that the launch limits would refuse, so that it can report what does not fit.
  detail::LaunchGeometry g;
  g.shape = shape.resolved();
  if (!use_fast(plan, g.shape, dtype)) return sizeof(float) * scratch_layout(g.shape, nullptr, backward).floats;
  const detail::FastLaunch f = fast_launch(plan, g);
  return sizeof(float) * scratch_layout(g.shape, &f, backward).floats;
}

void attention_forward(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype, const void* q,
                       const void* k, const void* v, void* out, float* lse, CUstream_st* stream, void* workspace,
                       size_t workspace_bytes) {
  const detail::LaunchGeometry g = geometry(plan, shape, dtype, stream);
  const size_t align = element_size(dtype);
  check_pointer(q, align, "q");
  check_pointer(k, align, "k");
  check_pointer(v, align, "v");
  check_pointer(out, align, "out");
  check_pointer(lse, sizeof(float), "lse");
  if (!use_fast(plan, g.shape, dtype)) {
    detail::forward(g, layout_view(plan), dtype, q, k, v, out, lse);
    return;
  }
  const detail::FastLaunch f = fast_launch(plan, g);
  const ScratchLayout layout = scratch_layout(g.shape, &f, false);
  CallScratch scratch(sizeof(float) * layout.floats, workspace, workspace_bytes, stream);
  detail::FastScratch parts;
  if (f.parts.columns) {
    parts.part_o = scratch.floats() + layout.part_o;
    parts.part_lse = scratch.floats() + layout.part_lse;
  }
  detail::forward_fast(f, dtype, q, k, v, out, lse, parts);
}

void attention_backward(const DeviceAttentionPlan& plan, const AttentionShape& shape, DType dtype, const void* q,
                        const void* k, const void* v, const void* out, const float* lse, const void* dout, void* dq,
                        void* dk, void* dv, CUstream_st* stream, void* workspace, size_t workspace_bytes) {
  const detail::LaunchGeometry g = geometry(plan, shape, dtype, stream);
  const size_t align = element_size(dtype);
  check_pointer(q, align, "q");
  check_pointer(k, align, "k");
  check_pointer(v, align, "v");
  check_pointer(out, align, "out");
  check_pointer(lse, sizeof(float), "lse");
  check_pointer(dout, align, "dout");
  check_pointer(dq, align, "dq");
  check_pointer(dk, align, "dk");
  check_pointer(dv, align, "dv");
  if (!use_fast(plan, g.shape, dtype)) {
    CallScratch scratch(sizeof(float) * scratch_layout(g.shape, nullptr, true).floats, workspace, workspace_bytes,
                        stream);
    detail::backward(g, layout_view(plan), dtype, q, k, v, out, lse, dout, scratch.floats(), dq, dk, dv);
    return;
  }
  const detail::FastLaunch f = fast_launch(plan, g);
  const ScratchLayout layout = scratch_layout(g.shape, &f, true);
  CallScratch scratch(sizeof(float) * layout.floats, workspace, workspace_bytes, stream);
  float* delta = scratch.floats() + layout.delta;  // (B, H, T)
  detail::FastScratch parts;
  if (f.parts.columns) parts.dq_part = scratch.floats() + layout.dq_part;
  if (f.accumulate_dq) parts.dq_accum = scratch.floats() + layout.dq_accum;
  if (f.parts.columns || f.parts.summary_part) {
    parts.dk_part = scratch.floats() + layout.dk_part;
    parts.dv_part = scratch.floats() + layout.dv_part;
  }
  detail::attention_delta(g, dtype, out, dout, delta);
  detail::backward_fast(f, dtype, q, k, v, lse, dout, delta, dq, dk, dv, parts);
}

}  // namespace spt::cuda
