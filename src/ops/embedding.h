// Input embedding of docs/MODEL.md: position t of sequence b gets the embedding of
// the previous token (zero at t = 0) plus one row of every factorized position table,
//   h[b, t] = (t > 0 ? tok_emb[x[b, t-1]] : 0) + sum_k pos_emb.k[coord_k(t)],
//   coord_k(t) = (t / prod(pos_sizes[k+1:])) % pos_sizes[k].
#pragma once

#include "ops/dtype.h"

#include <cstdint>
#include <vector>

namespace spt {

// Coordinate of position t in table k of the factorization pos_sizes.
int64_t position_coordinate(const std::vector<int>& pos_sizes, int k, int64_t t);

namespace cpu {

// tokens: (B, T); tok_emb: (V, C); pos_tables[k]: (pos_sizes[k], C); h: (B, T, C) overwritten.
void embedding_forward(const uint8_t* tokens, int B, int64_t T, int C, const float* tok_emb,
                       const std::vector<const float*>& pos_tables, const std::vector<int>& pos_sizes, float* h);

// One position t of S sequences (decoding): previous: (S), the tokens at t - 1 (not read at
// t = 0); h: (S, C) overwritten with the rows of position t, as embedding_forward computes them.
void embedding_forward_position(const uint8_t* previous, int S, int64_t t, int C, const float* tok_emb,
                                const std::vector<const float*>& pos_tables, const std::vector<int>& pos_sizes,
                                float* h);

// dh: (B, T, C). Adds into dtok_emb (V, C) and dpos_tables[k] (pos_sizes[k], C), with fp64
// sums in a fixed order.
void embedding_backward(const uint8_t* tokens, int B, int64_t T, int C, const float* dh, float* dtok_emb,
                        const std::vector<float*>& dpos_tables, const std::vector<int>& pos_sizes);

}  // namespace cpu
// CUDA backend: device pointers, asynchronous on `stream`.
namespace cuda {
// At most this many factorized position tables (text uses 2, images 3).
inline constexpr int kMaxPositionTables = 4;
struct PositionTables {
  int count = 0;
  int size[kMaxPositionTables] = {};    // pos_sizes[k]
  float* table[kMaxPositionTables] = {};  // (size[k], C) fp32 device pointers (weights, or their gradients)
};
// tokens: (B, T) uint8 device; tok_emb: (V, C) fp32; h: (B, T, C) fp32 overwritten.
void embedding_forward(const uint8_t* tokens, int B, int64_t T, int C, const float* tok_emb,
                       const PositionTables& pos, float* h, CUstream_st* stream = nullptr);
// One position t of S sequences (decoding): previous: (S) uint8 device, the tokens at
// t - 1 (not read at t = 0); h: (S, C) fp32 overwritten with the rows of position t.
void embedding_forward_position(const uint8_t* previous, int S, int64_t t, int C, const float* tok_emb,
                                const PositionTables& pos, float* h, CUstream_st* stream = nullptr);

// dh: (B, T, C) fp32. Adds into dtok_emb (V, C) and the tables of dpos; every gradient
// row is summed by one thread block in a fixed order (no atomics): deterministic.
void embedding_backward(const uint8_t* tokens, int B, int64_t T, int C, const float* dh, float* dtok_emb,
                        const PositionTables& dpos, CUstream_st* stream = nullptr);
}  // namespace cuda

}  // namespace spt
