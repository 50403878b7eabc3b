// Token + factorized position embedding. The backward pass gives each thread a range
// of columns and walks all positions in order, so the fp64 sums do not depend on the
// thread count.
#include "ops/embedding.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/vocab.h"

namespace spt {

int64_t position_coordinate(const std::vector<int>& pos_sizes, int k, int64_t t) {
  int64_t inner = 1;
  for (size_t j = static_cast<size_t>(k) + 1; j < pos_sizes.size(); ++j) inner *= pos_sizes[j];
  return (t / inner) % pos_sizes[k];
}

namespace cpu {
namespace {

// coords (T, tables): the row of every table used by position t.
std::vector<int64_t> coordinates(int64_t T, const std::vector<int>& pos_sizes) {
  const size_t tables = pos_sizes.size();
  std::vector<int64_t> coords(static_cast<size_t>(T) * tables);
  for (size_t k = 0; k < tables; ++k)
    for (int64_t t = 0; t < T; ++t) coords[t * tables + k] = position_coordinate(pos_sizes, static_cast<int>(k), t);
  return coords;
}

void check(int B, int64_t T, int C, size_t tables, const std::vector<int>& pos_sizes) {
  SPT_CHECK(B >= 1 && T >= 1 && C >= 1, "embedding dims B=", B, " T=", T, " C=", C, " must be positive");
  SPT_CHECK(tables == pos_sizes.size(), "embedding got ", tables, " position tables for ", pos_sizes.size(),
            " position sizes");
}

// hr (C) = token_row (C), or zero without one, plus row coords[k] of every position table k.
void embed_row(const float* token_row, const std::vector<const float*>& pos_tables, const int64_t* coords, int C,
               float* hr) {
  if (token_row != nullptr) std::copy(token_row, token_row + C, hr);
  else std::fill(hr, hr + C, 0.0f);
  for (size_t k = 0; k < pos_tables.size(); ++k) {
    const float* pos = pos_tables[k] + coords[k] * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) hr[c] += pos[c];
  }
}

}  // namespace

void embedding_forward(const uint8_t* tokens, int B, int64_t T, int C, const float* tok_emb,
                       const std::vector<const float*>& pos_tables, const std::vector<int>& pos_sizes, float* h) {
  check(B, T, C, pos_tables.size(), pos_sizes);
  const size_t tables = pos_tables.size();
  const std::vector<int64_t> coords = coordinates(T, pos_sizes);
  parallel_for(int64_t{B} * T, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t t = row % T;
      const float* token_row = t > 0 ? tok_emb + int64_t{tokens[row - 1]} * C : nullptr;
      embed_row(token_row, pos_tables, coords.data() + t * tables, C, h + row * C);
    }
  }, 256);
}

void embedding_forward_position(const uint8_t* previous, int S, int64_t t, int C, const float* tok_emb,
                                const std::vector<const float*>& pos_tables, const std::vector<int>& pos_sizes,
                                float* h) {
  SPT_CHECK(t >= 0, "embedding position t=", t, " must not be negative");
  check(S, t + 1, C, pos_tables.size(), pos_sizes);  // positions 0..t of S sequences
  std::vector<int64_t> coords(pos_tables.size());  // (tables) the row of every table at t
  for (size_t k = 0; k < coords.size(); ++k) coords[k] = position_coordinate(pos_sizes, static_cast<int>(k), t);
  for (int s = 0; s < S; ++s) {
    const float* token_row = t > 0 ? tok_emb + int64_t{previous[s]} * C : nullptr;
    embed_row(token_row, pos_tables, coords.data(), C, h + int64_t{s} * C);
  }
}

void embedding_backward(const uint8_t* tokens, int B, int64_t T, int C, const float* dh, float* dtok_emb,
                        const std::vector<float*>& dpos_tables, const std::vector<int>& pos_sizes) {
  check(B, T, C, dpos_tables.size(), pos_sizes);
  const size_t tables = dpos_tables.size();
  const std::vector<int64_t> coords = coordinates(T, pos_sizes);
  parallel_for(C, [&](int64_t c_begin, int64_t c_end) {
    const int64_t width = c_end - c_begin;
    std::vector<double> tok_sums(static_cast<size_t>(kVocab) * width, 0.0);  // (V, width)
    std::vector<std::vector<double>> pos_sums(tables);                        // (pos_sizes[k], width)
    for (size_t k = 0; k < tables; ++k) pos_sums[k].assign(static_cast<size_t>(pos_sizes[k]) * width, 0.0);
    for (int b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = int64_t{b} * T + t;
        const float* g = dh + row * C + c_begin;
        if (t > 0) {
          double* acc = tok_sums.data() + int64_t{tokens[row - 1]} * width;
#pragma omp simd
          for (int64_t c = 0; c < width; ++c) acc[c] += g[c];
        }
        for (size_t k = 0; k < tables; ++k) {
          double* acc = pos_sums[k].data() + coords[t * tables + k] * width;
#pragma omp simd
          for (int64_t c = 0; c < width; ++c) acc[c] += g[c];
        }
      }
    for (int64_t v = 0; v < kVocab; ++v)
      for (int64_t c = 0; c < width; ++c) {
        float& out = dtok_emb[v * C + c_begin + c];
        out = static_cast<float>(out + tok_sums[v * width + c]);
      }
    for (size_t k = 0; k < tables; ++k)
      for (int64_t p = 0; p < pos_sizes[k]; ++p)
        for (int64_t c = 0; c < width; ++c) {
          float& out = dpos_tables[k][p * C + c_begin + c];
          out = static_cast<float>(out + pos_sums[k][p * width + c]);
        }
  }, 16);
}

}  // namespace cpu
}  // namespace spt
