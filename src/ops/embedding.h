// Input embedding of docs/MODEL.md: position t of sequence b gets the embedding of
// the previous token (zero at t = 0) plus one row of every factorized position table,
//   h[b, t] = (t > 0 ? tok_emb[x[b, t-1]] : 0) + sum_k pos_emb.k[coord_k(t)],
//   coord_k(t) = (t / prod(pos_sizes[k+1:])) % pos_sizes[k].
#pragma once

#include <cstdint>
#include <vector>

namespace spt {

// Coordinate of position t in table k of the factorization pos_sizes.
int64_t position_coordinate(const std::vector<int>& pos_sizes, int k, int64_t t);

namespace cpu {

// tokens: (B, T); tok_emb: (V, C); pos_tables[k]: (pos_sizes[k], C); h: (B, T, C) overwritten.
void embedding_forward(const uint8_t* tokens, int B, int64_t T, int C, const float* tok_emb,
                       const std::vector<const float*>& pos_tables, const std::vector<int>& pos_sizes, float* h);

// dh: (B, T, C). Adds into dtok_emb (V, C) and dpos_tables[k] (pos_sizes[k], C), with fp64
// sums in a fixed order.
void embedding_backward(const uint8_t* tokens, int B, int64_t T, int C, const float* dh, float* dtok_emb,
                        const std::vector<float*>& dpos_tables, const std::vector<int>& pos_sizes);

}  // namespace cpu
// The CUDA backend declares the same entry points in namespace spt::cuda.

}  // namespace spt
