// Device pieces of the tensor-core attention kernels (bf16 / fp16 inputs, fp32 accumulation):
// mma.sync m16n8k16 and ldmatrix wrappers, cp.async tile loads, the element predicate on
// register fragments, and the cursors that turn a block list into 64-wide tiles.
//
// A CTA is 4 warps; each warp owns 16 rows of a 64-row tile. Fragment layout of
// mma.m16n8k16 (g = lane / 4, t = lane % 4):
//   A (16 x 16): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16 x 8):  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C (16 x 8):  c0, c1 = (g, 2t..2t+1), c2, c3 = (g+8, 2t..2t+1)
// Shared-memory tiles are (64, D + 8) elements: the 16 bytes of padding per row make the 8
// row addresses of one ldmatrix land in 8 different bank groups.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/cuda/attention_common.cuh"
#include "ops/cuda/op_common.cuh"

namespace spt::cuda::detail::tc {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTile = 64;  // rows of a query tile and of a key tile
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// 2^x by the special-function unit alone (ex2.approx.ftz): exp2f adds a rescaling around it
// for results below 2^-126 (three more instructions per call); here those flush to zero,
// which no softmax weight or probability of these kernels can tell from a subnormal.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

template <int D>
__host__ __device__ constexpr int pitch() {
  return D + 8;
}
template <int D>
__host__ __device__ constexpr int tile_elements() {
  return kTile * pitch<D>();
}

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}

// Stores four 8 x 8 matrices of 16-bit elements, register i of every lane into matrix i; lane
// l gives the address of row l mod 8 of matrix l / 8 (16 bytes). The inverse of ldmatrix_x4.
__device__ __forceinline__ void stmatrix_x4(void* p, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(smem_address(p)), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}

// c += a * b on one 16 x 8 tile.
template <typename Scalar>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<Scalar, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    static_assert(std::is_same_v<Scalar, __half>, "tensor-core attention takes bf16 or fp16");
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// The A fragment of columns [16 kk, 16 kk + 16) of a 16-row accumulator block s[n][.] (n-tiles of 8).
template <typename Scalar, int N>
__device__ __forceinline__ void accumulator_to_a(uint32_t (&a)[4], const float (&s)[N][4], int kk) {
  a[0] = ops::pack_pair<Scalar>(s[2 * kk][0], s[2 * kk][1]);
  a[1] = ops::pack_pair<Scalar>(s[2 * kk][2], s[2 * kk][3]);
  a[2] = ops::pack_pair<Scalar>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = ops::pack_pair<Scalar>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// Shared-memory address offsets (in elements, pitch P) of one lane's ldmatrix row.
// A operand, rows [r0, r0 + 16) x columns [c0, c0 + 16) of a row-major tile.
template <int P>
__device__ __forceinline__ int a_offset(int lane, int r0, int c0) {
  return (r0 + (lane & 15)) * P + c0 + 8 * (lane >> 4);
}
// B operands of two n-tiles from a tile stored (n, k): rows [n0, n0 + 16) are n, columns
// [k0, k0 + 16) are k. Gives b0, b1 of n-tile n0 and b0, b1 of n-tile n0 + 8 (non-transposed).
template <int P>
__device__ __forceinline__ int b_offset(int lane, int n0, int k0) {
  return (n0 + (lane & 7) + 8 * (lane >> 4)) * P + k0 + 8 * ((lane >> 3) & 1);
}
// B operands of two n-tiles from a tile stored (k, n): rows [k0, k0 + 16) are k, columns
// [n0, n0 + 16) are n (use with ldmatrix .trans).
template <int P>
__device__ __forceinline__ int bt_offset(int lane, int k0, int n0) {
  return (k0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * P + n0 + 8 * (lane >> 4);
}

__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src), "r"(src_bytes)
               : "memory");
}
// One 4-byte word; src_bytes 0 writes zero.
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_address(dst)), "l"(src), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Starts copying rows [0, rows) of a (64, D) head slice (row stride `stride` elements) into a
// padded tile; rows [rows, 64) become zero so they add nothing to any product. With
// vector_io (16-byte aligned rows) the copy is asynchronous (cp.async); otherwise it is
// done element by element before returning. Either way it is visible after
// cp_async_wait_all() and a barrier.
template <int D, typename Scalar>
__device__ __forceinline__ void load_tile(Scalar* tile, const Scalar* src, int64_t stride, int rows, bool vector_io) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  if (vector_io) {
#pragma unroll
    for (int it = 0; it < kTile * kChunks / kThreads; ++it) {
      const int c = threadIdx.x + it * kThreads;
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const Scalar* from = r < rows ? src + r * stride + col : src;
      cp_async_16(tile + r * pitch<D>() + col, from, r < rows ? 16 : 0);
    }
  } else {
    const auto* from = reinterpret_cast<const uint16_t*>(src);
    auto* to = reinterpret_cast<uint16_t*>(tile);
    for (int e = threadIdx.x; e < kTile * D; e += kThreads) {
      const int r = e / D, col = e % D;
      to[r * pitch<D>() + col] = r < rows ? from[r * stride + col] : uint16_t{0};
    }
  }
}

// Writes a pair of adjacent columns.
template <typename Scalar>
__device__ __forceinline__ void store_pair(Scalar* p, float x0, float x1, bool vector_io) {
  if (vector_io) {
    const uint32_t bits = ops::pack_pair<Scalar>(x0, x1);
    memcpy(p, &bits, 4);
  } else {
    store_f32(p, x0);
    store_f32(p + 1, x1);
  }
}

// Eight adjacent fp32 values (16-byte aligned) of a staged row.
__device__ __forceinline__ void load_eight(const float* p, float (&y)[8]) {
  const float4 lo = *reinterpret_cast<const float4*>(p);
  const float4 hi = *reinterpret_cast<const float4*>(p + 4);
  y[0] = lo.x;
  y[1] = lo.y;
  y[2] = lo.z;
  y[3] = lo.w;
  y[4] = hi.x;
  y[5] = hi.y;
  y[6] = hi.z;
  y[7] = hi.w;
}

// Writes eight adjacent columns: one 16-byte store with vector_io (p 16-byte aligned).
template <typename Scalar>
__device__ __forceinline__ void store_eight(Scalar* p, const float (&y)[8], bool vector_io) {
  if (vector_io) {
    ops::store_vector(p, y);
  } else {
#pragma unroll
    for (int j = 0; j < 8; j += 2) store_pair(p + j, y[j], y[j + 1], false);
  }
}

// The element predicate of one head with the residues mod l supplied by the caller, so a
// fragment walks its columns by increments instead of a division per element.
// i: query, j: key, im = i mod l, jm = j mod l (l = max(stride, 1)).
template <int Kind>
__device__ __forceinline__ bool pair_allowed(const DeviceHeadMask& m, int i, int j, int im, int jm) {
  if (j > i) return false;
  if (m.use_a1) {
    if constexpr (Kind == kDense) return true;
    if constexpr (Kind == kLocal || Kind == kStrided) {
      if (i - j < m.stride) return true;
    }
    if constexpr (Kind == kFixed) {
      if (j >= i - im) return true;  // same l-block as i
    }
  }
  if (m.use_a2) {
    if constexpr (Kind == kStrided) {
      if (im == jm) return true;  // (i - j) mod l == 0
    }
    if constexpr (Kind == kFixed) {
      if (jm >= m.summary_lo && jm < m.summary_hi) return true;
    }
  }
  return false;
}

// Per-thread constants of the predicate for the two fragment rows a thread owns.
struct FragmentRows {
  int index[2];    // position of rows g and g + 8
  int residue[2];  // index mod l
};

__device__ __forceinline__ int mask_modulus(const DeviceHeadMask& m) { return m.stride > 1 ? m.stride : 1; }

__device__ __forceinline__ FragmentRows fragment_rows(const DeviceHeadMask& m, int first_row) {
  const int l = mask_modulus(m);
  const int g = (threadIdx.x % 32) / 4;
  return {{first_row + g, first_row + g + 8}, {(first_row + g) % l, (first_row + g + 8) % l}};
}

// Sets to -inf the entries of a 16-row accumulator block whose pair is not allowed. The
// block's rows are `rows`; its columns are col0 + 8 n + 2t + c. Rows are queries (forward,
// dQ) or keys (dK/dV, where the block is transposed).
template <int Kind, bool kRowsAreQueries, int N>
__device__ __forceinline__ void mask_block(float (&s)[N][4], const DeviceHeadMask& m, const FragmentRows& rows,
                                           int col0) {
  const int l = mask_modulus(m);
  const int step1 = 1 % l, step8 = 8 % l;
  const int first_col = col0 + 2 * (threadIdx.x % 4);
  int residue = first_col % l;
#pragma unroll
  for (int n = 0; n < N; ++n) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int col = first_col + 8 * n + c;
      int col_residue = residue;
      if (c == 1) {
        col_residue += step1;
        if (col_residue >= l) col_residue -= l;
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const bool ok = kRowsAreQueries
                            ? pair_allowed<Kind>(m, rows.index[r], col, rows.residue[r], col_residue)
                            : pair_allowed<Kind>(m, col, rows.index[r], col_residue, rows.residue[r]);
        if (!ok) s[n][2 * r + c] = -INFINITY;
      }
    }
    residue += step8;
    if (residue >= l) residue -= l;
  }
}

template <bool kRowsAreQueries, int N>
__device__ __forceinline__ void apply_mask(float (&s)[N][4], const DeviceHeadMask& m, const FragmentRows& rows,
                                           int col0) {
  switch (m.kind) {
    case kDense: mask_block<kDense, kRowsAreQueries>(s, m, rows, col0); break;
    case kLocal: mask_block<kLocal, kRowsAreQueries>(s, m, rows, col0); break;
    case kStrided: mask_block<kStrided, kRowsAreQueries>(s, m, rows, col0); break;
    default: mask_block<kFixed, kRowsAreQueries>(s, m, rows, col0); break;
  }
}

// Walks a row list (key blocks of one query block) as 64-wide key tiles, stopping at the
// first tile that starts after the query tile's last row (lists ascend, so no later tile
// holds a causal pair). A 64-part of a full block is full; of a partial one, partial.
struct KeyTiles {
  int64_t entry, end;
  int part = 0;
  int last_query;

  __device__ bool next(const LayoutView& layout, int& k0, bool& full) {
    while (entry < end) {
      const int start = layout.key_block[entry] * layout.block + part * kTile;
      const bool block_full = layout.key_full[entry] != 0;
      if (++part * kTile >= layout.block) {
        part = 0;
        ++entry;
      }
      if (start > last_query) {
        entry = end;
        return false;
      }
      if (start < layout.T) {
        k0 = start;
        full = block_full;
        return true;
      }
    }
    return false;
  }
};

// Walks a column list (query blocks touching one key block) as 64-wide query tiles,
// skipping tiles that end before the key tile's first key.
struct QueryTiles {
  int64_t entry, end;
  int part = 0;
  int first_key;

  __device__ bool next(const LayoutView& layout, int& i0, bool& full) {
    while (entry < end) {
      const int start = layout.query_block[entry] * layout.block + part * kTile;
      const bool block_full = layout.query_full[entry] != 0;
      if (++part * kTile >= layout.block) {
        part = 0;
        ++entry;
      }
      if (start < layout.T && start + kTile - 1 >= first_key) {
        i0 = start;
        full = block_full;
        return true;
      }
    }
    return false;
  }
};

// Grid order: blockIdx.x = rank * (B * H) + (b * H + h), so all heads' tiles of one rank
// run together and the rank sets which tile runs first.
struct TileIndex {
  int rank, b, h;
};
__device__ __forceinline__ TileIndex tile_index(int B, int H) {
  const int bh = blockIdx.x % (B * H);
  return {static_cast<int>(blockIdx.x / (B * H)), bh / H, bh % H};
}

}  // namespace spt::cuda::detail::tc
