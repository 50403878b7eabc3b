// Hopper warpgroup MMA (wgmma.mma_async, sm_90a) tile steps for the pattern-specific attention
// kernels at head dim 64. The kernels' structure is the mma.sync one: a warpgroup (4 warps)
// owns a 64-row tile, every warp 16 rows, and the accumulators keep the mma.sync fragment
// layout (a 64 x N wgmma accumulator gives each warp exactly the [N / 8][4] fragments of its
// 16 rows), so masking, softmax and the epilogues are shared with the mma.sync path. What
// changes is where B comes from: wgmma reads it straight from shared memory through a
// descriptor, so the tiles are stored unpadded with the 128-byte swizzle (16-byte chunk c of
// row r at chunk c xor (r mod 8)), 1024-byte aligned.
//   both from shared memory, K-major:       S = Q K^T, dP = dO V^T, S^T = K Q^T, dP^T = V dO^T
//                                           (issued in pairs where both are needed)
//   A from registers, B N-major (rows = K): O += P V, dQ += dS K, dV += P^T dO, dK += dS^T Q
//   A M-major from dS^T staged in shared memory, B N-major: dQ share = dS K in the dK/dV pass
// The forward runs two warpgroups per CTA (128 query rows sharing each key/value tile); the
// dK/dV pass also produces dQ (kFusedDq), its shares added into fp32 by bulk reductions.
// A operands that live in shared memory are read through descriptors too: with query
// fragments held in registers across the key loop, ptxas (CUDA 13.0) reused those registers
// inside the loop and the second key tile met garbage queries.
// Used only where SPT_CUDA_WGMMA is defined (CMake sets it for the sm_90a target).
#pragma once

#include "ops/cuda/attention_tc_tiles.cuh"

#if defined(SPT_CUDA_WGMMA) && defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "SPT_CUDA_WGMMA needs device code for sm_90a (CMAKE_CUDA_ARCHITECTURES 90a)"
#endif

namespace spt::cuda::detail::wg {

using tc::kTile;

constexpr int kRowElements = 64;                       // head dim 64: one 128-byte row per tile row
constexpr int kTileElements = kTile * kRowElements;    // (64, 64), 8 KiB
constexpr int kSwizzleBytes = 1024;                    // the swizzle pattern repeats every 8 rows

// Element offset of (row r, column col) in a swizzled tile.
__host__ __device__ __forceinline__ int offset(int r, int col) {
  return r * kRowElements + ((((col >> 3) ^ (r & 7))) << 3) + (col & 7);
}

// Shared-memory matrix descriptor of a 128-byte-swizzled operand: the low word holds the
// start address (>> 4) and the leading byte offset, the high word the stride between groups
// of 8 rows (1024 bytes) and the swizzle mode, the same for every tile here. Steps along a
// tile add to the low word alone (the address field never carries out of it), so the compiler
// keeps one 32-bit register per descriptor instead of 64-bit sums.
struct Descriptor {
  static constexpr uint32_t kHigh = (kSwizzleBytes >> 4) | (1u << 30);  // 128-byte swizzle: bit 62
  uint32_t low;

  __device__ Descriptor operator+(uint32_t steps) const { return {low + steps}; }
  __device__ uint64_t value() const { return (uint64_t{kHigh} << 32) | low; }
};

// The descriptor of the tile at p: for N-major operands 8 KiB between 64-column blocks (one
// block here, so unused), for K-major ones the leading offset is unused.
__device__ __forceinline__ Descriptor descriptor(const void* p, bool n_major) {
  const uint32_t address = tc::smem_address(p);
  return {((address & 0x3FFFFu) >> 4) | ((n_major ? (kTileElements * 2u) >> 4 : 1u) << 16)};
}

// Descriptor steps: 16 columns of a K-major tile (32 bytes), 16 rows of an N-major one (2 KiB).
constexpr uint32_t kStepK = 32 >> 4;
constexpr uint32_t kStepRows = (16 * kRowElements * 2) >> 4;

__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

// Pins accumulator registers at this point of the program, so the compiler neither reads them
// before wait_all() nor moves writes past fence().
template <int N>
__device__ __forceinline__ void pin(float (&d)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[n][e])::"memory");
}

// Makes this thread's cp.async writes to shared memory visible to wgmma's reads (the async
// proxy); a barrier must follow.
__device__ __forceinline__ void smem_ready() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Bulk asynchronous reduction (TMA engine): adds `bytes` bytes of fp32 from shared memory
// into global memory; both 16-byte aligned, bytes a multiple of 16. The shared source must
// be made visible with smem_ready() and a barrier first, and stay untouched until
// bulk_wait_read() says it has been read.
__device__ __forceinline__ void bulk_reduce_add(float* global, const float* shared, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(global),
               "r"(tc::smem_address(shared)), "r"(bytes)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// This thread's bulk reductions have read their shared source.
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
// This thread's bulk reductions are complete.
__device__ __forceinline__ void bulk_wait() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// The accumulator operands of a (64 x 64) tile: this thread's 32 floats in fragment order.
#define SPT_WGMMA_D64 \
    "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), \
    "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), \
    "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
    "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), \
    "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), \
    "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
    "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), \
    "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
// One wgmma of element type TYPE, "bf16" or "f16", adding to d (scale-d 1) when `accumulate`
// is non-zero, else overwriting it: RS takes A from registers, SS from a descriptor.
#define SPT_WGMMA_RS_N64(TYPE) \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n" \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE \
               " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, %37;\n}\n" \
               : SPT_WGMMA_D64 \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b.value()), "n"(kTransB), "r"(accumulate))
#define SPT_WGMMA_SS_N64(TYPE) \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE \
               " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, %35, %36;\n}\n" \
               : SPT_WGMMA_D64 \
               : "l"(a.value()), "l"(b.value()), "r"(accumulate), "n"(kTransA), "n"(kTransB))

// d += A B on a (64 x 64) tile: A this thread's fragment of its warp's 16 rows x 16, B (16 x 64)
// through its descriptor; kTransB 1 reads B N-major (the tile's rows are K).
template <typename Scalar, int kTransB>
__device__ __forceinline__ void mma_n64(float (&d)[8][4], const uint32_t (&a)[4], Descriptor b, int accumulate = 1) {
  if constexpr (std::is_same_v<Scalar, __nv_bfloat16>)
    SPT_WGMMA_RS_N64("bf16");
  else
    SPT_WGMMA_RS_N64("f16");
}

// d += A B (d = A B with accumulate 0) on a (64 x 64) tile with A (64 x 16) and B (16 x 64)
// through their descriptors: K-major by default, kTransA 1 reads A M-major (the tile's rows
// are K), kTransB 1 B N-major.
template <typename Scalar, int kTransA = 0, int kTransB = 0>
__device__ __forceinline__ void mma_ss(float (&d)[8][4], Descriptor a, Descriptor b, int accumulate = 1) {
  if constexpr (std::is_same_v<Scalar, __nv_bfloat16>)
    SPT_WGMMA_SS_N64("bf16");
  else
    SPT_WGMMA_SS_N64("f16");
}

#undef SPT_WGMMA_D64
#undef SPT_WGMMA_RS_N64
#undef SPT_WGMMA_SS_N64

// The tile steps, with the interface of tc::Steps. Operands that stay in shared memory for a
// whole loop (queries, dout, keys, values) are read through descriptors, never held in
// registers across iterations; only the probabilities and dS, fresh every step, come from
// registers.
template <typename Scalar>
struct Steps {
  static constexpr int kTileElements = wg::kTileElements;
  static constexpr int kAlignBytes = kSwizzleBytes;
  // forward warpgroups per multiprocessor to size registers for (128 each: 2 CTAs of 2)
  static constexpr int kForwardBlocks = 4;
  // forward warpgroups per CTA, each on its own 64 query rows, sharing the key/value tiles
  // (three at one CTA per multiprocessor, with or without the softmax overlapping the
  // previous tile's P V, measured slower: docs/BENCHMARKS.md)
  static constexpr int kForwardGroups = 2;
  // dK/dV CTAs per multiprocessor to size registers for
  static constexpr int kDkdvBlocks = 3;
  static constexpr int kDkdvChunk = kTile;  // dK/dV: a whole query tile per step (N = 64)
  // The dK/dV pass can also produce dQ (dkdv_dq_issue), so no separate dQ pass recomputes S, dP.
  static constexpr bool kFusedDq = true;
  // dK/dV CTAs per multiprocessor with dQ fused (74 KiB of shared memory each)
  static constexpr int kFusedBlocks = 3;

  __device__ static int offset(int r, int col) { return wg::offset(r, col); }
  __device__ static void smem_ready() { wg::smem_ready(); }

  struct QueryFragments {};  // the queries stay in shared memory
  __device__ static void load_queries(QueryFragments&, const Scalar*, int, int) {}

  // s = Q K^T for the warpgroup's 64 query rows of q_s and the 64 keys of ks.
  __device__ static void scores(float (&s)[tc::kScoreTiles][4], const QueryFragments&, const Scalar* q_s,
                                const Scalar* ks, int /*lane*/) {
    const Descriptor a = descriptor(q_s, false), b = descriptor(ks, false);
    pin(s);
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) mma_ss<Scalar>(s, a + kk * kStepK, b + kk * kStepK, kk > 0);
    commit();
    complete(s);
  }

  // s = Q K^T and dp = dO V^T for the 64 rows of q_s and g_s and the 64 keys of ks, vs.
  __device__ static void scores_and_dp(float (&s)[tc::kScoreTiles][4], float (&dp)[tc::kScoreTiles][4],
                                       const Scalar* q_s, const Scalar* g_s, const Scalar* ks, const Scalar* vs,
                                       int /*warp*/, int /*lane*/) {
    score_pair(s, q_s, ks, dp, g_s, vs);
  }

  // acc += A X: A (16 rows per warp x 8 N) from score-shaped accumulators a_acc, X the rows
  // [row0, row0 + 8 N) of tile, all 64 columns.
  template <int N>
  __device__ static void product(float (&acc)[8][4], const float (&a_acc)[N][4], const Scalar* tile, int /*lane*/,
                                 int row0) {
    uint32_t a[N / 2][4];
#pragma unroll
    for (int kk = 0; kk < N / 2; ++kk) tc::accumulator_to_a<Scalar>(a[kk], a_acc, kk);
    const Descriptor b = descriptor(tile + row0 * kRowElements, true);
    pin(acc);
    fence();
#pragma unroll
    for (int kk = 0; kk < N / 2; ++kk) mma_n64<Scalar, 1>(acc, a[kk], b + kk * kStepRows);
    commit();
    complete(acc);
  }

  // One dK/dV step: the queries [qc, qc + 64) of qs (dout gs) against the 64 keys of k_s, v_s;
  // mask(s) refuses pairs of S^T. S^T and dP^T go out as one batch, dV and dK as another.
  template <int NC, typename Mask>
  __device__ static void dkdv_step(float (&dk)[8][4], float (&dv)[8][4], const Scalar* k_s, const Scalar* v_s,
                                    const Scalar* qs, const Scalar* gs, const float* lse2, const float* delta,
                                    float scale_log2, int /*warp*/, int lane, int qc, const Mask& mask) {
    static_assert(NC == 8, "the wgmma dK/dV step takes a whole 64-query tile");
    float s[NC][4], dp[NC][4];
    score_pair(s, k_s, qs + qc * kRowElements, dp, v_s, gs + qc * kRowElements);
    mask(s);
    tc::probabilities_t(s, lse2, scale_log2, lane, qc);
    tc::scores_gradient_t(dp, s, delta, lane, qc);
    uint32_t pa[NC / 2][4], da[NC / 2][4];
#pragma unroll
    for (int kk = 0; kk < NC / 2; ++kk) {
      tc::accumulator_to_a<Scalar>(pa[kk], s, kk);
      tc::accumulator_to_a<Scalar>(da[kk], dp, kk);
    }
    const Descriptor g = descriptor(gs + qc * kRowElements, true), q = descriptor(qs + qc * kRowElements, true);
    pin(dv);
    pin(dk);
    fence();
#pragma unroll
    for (int kk = 0; kk < NC / 2; ++kk) {
      mma_n64<Scalar, 1>(dv, pa[kk], g + kk * kStepRows);
      mma_n64<Scalar, 1>(dk, da[kk], q + kk * kStepRows);
    }
    commit();
    complete(dv, dk);
  }

  // One step of the fused dK/dV + dQ pass (kFusedDq), once S^T and dP^T of a whole query tile
  // are complete (issue_score_pair, complete): P^T and dS^T; dV += P^T dO, dK += dS^T Q; dS^T
  // staged in ds_s (64 keys x 64 queries, swizzled); then, with dV and dK done (which frees the
  // P^T and dS^T fragments), dq = dS K (unscaled, rows = queries in the accumulator layout)
  // issued and left in flight: 5 products per key-query tile pair instead of the 7 of separate
  // passes.
  template <typename Mask>
  __device__ static void dkdv_dq_issue(float (&dk)[8][4], float (&dv)[8][4], float (&dq)[8][4], float (&s)[8][4],
                                       float (&dp)[8][4], Scalar* ds_s, const Scalar* k_s, const Scalar* qs,
                                       const Scalar* gs, const float* lse2, const float* delta, float scale_log2,
                                       int warp, int lane, const Mask& mask) {
    mask(s);
    tc::probabilities_t(s, lse2, scale_log2, lane, 0);
    tc::scores_gradient_t(dp, s, delta, lane, 0);
    uint32_t pa[4][4], da[4][4];
    // The A fragment's registers are the 8 x 8 blocks (keys, queries) (0-7, 0-7), (8-15, 0-7),
    // (0-7, 8-15), (8-15, 8-15) of the warp's 16 keys and 16 queries: one stmatrix each kk.
    const int block = lane / 8;
    const int key = 16 * warp + lane % 8 + 8 * (block & 1), query = 8 * (block >> 1);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      tc::accumulator_to_a<Scalar>(pa[kk], s, kk);
      tc::accumulator_to_a<Scalar>(da[kk], dp, kk);
      tc::stmatrix_x4(ds_s + offset(key, 16 * kk + query), da[kk]);
    }
    smem_ready();
    const Descriptor g = descriptor(gs, true), q = descriptor(qs, true);
    pin(dv);
    pin(dk);
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      mma_n64<Scalar, 1>(dv, pa[kk], g + kk * kStepRows);
      mma_n64<Scalar, 1>(dk, da[kk], q + kk * kStepRows);
    }
    commit();
    __syncthreads();  // every warp's keys of dS^T are in ds_s
    complete(dv, dk);
    // dQ = dS K: A = dS read M-major from dS^T (rows = keys = K), B = K read N-major.
    const Descriptor ds = descriptor(ds_s, true), k = descriptor(k_s, true);
    pin(dq);
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) mma_ss<Scalar, 1, 1>(dq, ds + kk * kStepRows, k + kk * kStepRows, kk > 0);
    commit();
  }

  // s = A1 B1^T and dp = A2 B2^T as one group, not waited for (see score_pair).
  __device__ static void issue_score_pair(float (&s)[tc::kScoreTiles][4], const Scalar* a1, const Scalar* b1,
                                          float (&dp)[tc::kScoreTiles][4], const Scalar* a2, const Scalar* b2) {
    const Descriptor d1 = descriptor(a1, false), e1 = descriptor(b1, false);
    const Descriptor d2 = descriptor(a2, false), e2 = descriptor(b2, false);
    pin(s);
    pin(dp);
    fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      mma_ss<Scalar>(s, d1 + kk * kStepK, e1 + kk * kStepK, kk > 0);
      mma_ss<Scalar>(dp, d2 + kk * kStepK, e2 + kk * kStepK, kk > 0);
    }
    commit();
  }

  // Waits for this warpgroup's products in flight, then pins their accumulators.
  template <typename... Accumulators>
  __device__ static void complete(Accumulators&... done) {
    wait_all();
    (pin(done), ...);
  }

 private:
  // s = A1 B1^T and dp = A2 B2^T, all four 64-row K-major tiles in shared memory, issued as one
  // batch: S and dP of the dQ pass, S^T and dP^T of the dK/dV pass.
  __device__ static void score_pair(float (&s)[tc::kScoreTiles][4], const Scalar* a1, const Scalar* b1,
                                    float (&dp)[tc::kScoreTiles][4], const Scalar* a2, const Scalar* b2) {
    issue_score_pair(s, a1, b1, dp, a2, b2);
    complete(s, dp);
  }
};

}  // namespace spt::cuda::detail::wg
