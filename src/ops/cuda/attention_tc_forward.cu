// Tensor-core sparse attention forward (bf16 / fp16, fp32 accumulation and statistics).
// One CTA of 4 warps per (64-query tile, batch row, head); each warp owns 16 query rows and
// keeps its Q fragments, online-softmax statistics and output rows in registers. Key and
// value tiles of 64 positions stream through a double-buffered shared-memory stage
// (cp.async), the next tile loading while the current one is used. Scores are kept in
// the log2 domain (scale * log2 e folded in) so the softmax uses exp2. Only partial tiles,
// and the tile holding position T - 1, evaluate the element predicate.
#include <cmath>

#include "core/cuda_check.h"
#include "ops/cuda/attention_launch.h"
#include "ops/cuda/attention_tc.cuh"
#include "ops/cuda/attention_tc_tiles.cuh"

namespace spt::cuda::detail {
namespace {

using namespace tc;

template <typename Scalar>
struct TcForwardArgs {
  const Scalar* q;  // (B, T, q_stride), head h at column h * D
  const Scalar* k;  // (B, T, k_stride)
  const Scalar* v;  // (B, T, v_stride)
  Scalar* out;      // (B, T, out_stride)
  float* lse;       // (B, H, T)
  int64_t q_stride, k_stride, v_stride, out_stride;
  float scale_log2;  // log2(e) / sqrt(D)
  int B, H;
  bool vector_io;  // every row 16-byte aligned: cp.async loads and paired stores
};

template <int D, typename Scalar>
__global__ void __launch_bounds__(tc::kThreads) tc_forward_kernel(LayoutView layout, TcForwardArgs<Scalar> args) {
  constexpr int P = pitch<D>();
  constexpr int KD = D / 16;  // k-steps over the head dim
  constexpr int NO = D / 8;   // output n-tiles
  constexpr int NS = kTile / 8;  // score n-tiles
  extern __shared__ __align__(16) unsigned char smem[];
  Scalar* q_s = reinterpret_cast<Scalar*>(smem);  // (64, P)
  Scalar* k_s = q_s + tile_elements<D>();         // (2, 64, P)
  Scalar* v_s = k_s + 2 * tile_elements<D>();     // (2, 64, P)

  const int T = layout.T;
  const int tiles = (T + kTile - 1) / kTile;
  const TileIndex at = tile_index(args.B, args.H);
  const int q0 = (tiles - 1 - at.rank) * kTile;  // the longest rows of a causal pattern first
  const int h = at.h;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const DeviceHeadMask mask = layout.masks[h];
  const int64_t row0 = int64_t{at.b} * T;
  const int64_t column = int64_t{h} * D;

  load_tile<D>(q_s, args.q + (row0 + q0) * args.q_stride + column, args.q_stride, min(kTile, T - q0), args.vector_io);
  const int64_t list = int64_t{h} * layout.blocks + q0 / layout.block;
  KeyTiles key_tiles{layout.row_begin[list], layout.row_begin[list + 1], 0, q0 + kTile - 1};
  int k0 = 0;
  bool full = false;
  bool have = key_tiles.next(layout, k0, full);
  auto load_kv = [&](int stage, int start) {
    const int keys = min(kTile, T - start);
    load_tile<D>(k_s + stage * tile_elements<D>(), args.k + (row0 + start) * args.k_stride + column, args.k_stride,
                 keys, args.vector_io);
    load_tile<D>(v_s + stage * tile_elements<D>(), args.v + (row0 + start) * args.v_stride + column, args.v_stride,
                 keys, args.vector_io);
  };
  if (have) load_kv(0, k0);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();

  uint32_t q_frag[KD][4];
#pragma unroll
  for (int kk = 0; kk < KD; ++kk) ldmatrix_x4(q_frag[kk], q_s + a_offset<P>(lane, 16 * warp, 16 * kk));

  float o[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};  // log2 domain
  float row_sum[2] = {0.0f, 0.0f};            // this thread's columns only, summed over the quad at the end
  const FragmentRows rows = fragment_rows(mask, q0 + 16 * warp);

  int stage = 0;
  while (have) {
    int k0_next = 0;
    bool full_next = false;
    const bool have_next = key_tiles.next(layout, k0_next, full_next);
    if (have_next) load_kv(stage ^ 1, k0_next);
    cp_async_commit();

    const Scalar* ks = k_s + stage * tile_elements<D>();
    const Scalar* vs = v_s + stage * tile_elements<D>();
    float s[NS][4];
    query_key_scores<D>(s, q_frag, ks, lane);
    // Keys past T exist only in the last tile; its pairs need the predicate even when full.
    if (!full || k0 + kTile > T) apply_mask<true>(s, mask, rows, k0);
    online_softmax(s, o, row_max, row_sum, args.scale_log2);
    accumulate_pv<D>(o, s, vs, lane);

    cp_async_wait_all();
    __syncthreads();  // the next stage landed; this stage's readers are done before it is refilled
    stage ^= 1;
    k0 = k0_next;
    full = full_next;
    have = have_next;
  }

  const int t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int i = rows.index[r];
    if (i >= T) continue;
    const bool empty = sum == 0.0f;
    const float inv = empty ? 0.0f : 1.0f / sum;
    Scalar* out_row = args.out + (row0 + i) * args.out_stride + column;
#pragma unroll
    for (int n = 0; n < NO; ++n)
      store_pair(out_row + 8 * n + 2 * t, o[n][2 * r] * inv, o[n][2 * r + 1] * inv, args.vector_io);
    if (t == 0)
      args.lse[(int64_t{at.b} * args.H + h) * T + i] = empty ? -INFINITY : (row_max[r] + log2f(sum)) * kLn2;
  }
}

template <int D, typename Scalar>
void launch(const LaunchGeometry& g, const LayoutView& layout, const TcForwardArgs<Scalar>& args) {
  const auto kernel = tc_forward_kernel<D, Scalar>;
  const size_t smem = sizeof(Scalar) * 5 * tile_elements<D>();
  prepare_kernel(reinterpret_cast<const void*>(kernel), smem);
  kernel<<<tc_grid(g), tc::kThreads, smem, g.stream>>>(layout, args);
  SPT_CUDA_CHECK(cudaGetLastError());
}

template <typename Scalar>
void run(const LaunchGeometry& g, const LayoutView& layout, const void* q, const void* k, const void* v, void* out,
         float* lse) {
  const AttentionShape& s = g.shape;
  const TcForwardArgs<Scalar> args{static_cast<const Scalar*>(q),
                                   static_cast<const Scalar*>(k),
                                   static_cast<const Scalar*>(v),
                                   static_cast<Scalar*>(out),
                                   lse,
                                   s.q_stride,
                                   s.k_stride,
                                   s.v_stride,
                                   s.out_stride,
                                   g.scale * kLog2e,
                                   s.B,
                                   s.H,
                                   rows_vector_aligned({q, k, v, out}, {s.q_stride, s.k_stride, s.v_stride, s.out_stride})};
  switch (s.Dk) {
    case 32: return launch<32>(g, layout, args);
    case 64: return launch<64>(g, layout, args);
    default: return launch<128>(g, layout, args);
  }
}

}  // namespace

void forward_tc(const LaunchGeometry& g, const LayoutView& layout, DType dtype, const void* q, const void* k,
                const void* v, void* out, float* lse) {
  if (dtype == DType::bf16)
    run<__nv_bfloat16>(g, layout, q, k, v, out, lse);
  else
    run<__half>(g, layout, q, k, v, out, lse);
}

}  // namespace spt::cuda::detail
