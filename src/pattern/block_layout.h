// Block layout of a pattern: the (query block, key block) tiles a kernel visits.
//
// The sequence is cut into nb = ceil(T / BS) blocks of BS positions (the last one
// may be short). For each (head, query block) the layout lists, ascending, the key
// blocks holding at least one allowed pair, each marked full (every in-range pair
// allowed, no element mask needed) or partial (the kernel must apply the element
// mask). The transposed form lists, per (head, key block), the query blocks that
// touch it, for backward passes that accumulate dK and dV per key block.
// Coverage is exact: no allowed pair lies outside a listed block and no listed
// block is empty.
#pragma once

#include <cstdint>
#include <vector>

#include "pattern/pattern.h"

namespace spt {

struct BlockLayout {
  int64_t T = 0;
  int block = 0;        // BS
  int heads = 0;        // H
  int64_t blocks = 0;   // nb = ceil(T / BS)

  // Row form, CSR over (head, query block): entries row_begin[h * nb + qb] ..
  // row_begin[h * nb + qb + 1] of key_block / key_full.
  std::vector<int64_t> row_begin;  // (H * nb + 1)
  std::vector<int32_t> key_block;  // (nnz) key block index
  std::vector<uint8_t> key_full;   // (nnz) 1 = every in-range pair allowed

  // Transposed form, CSR over (head, key block).
  std::vector<int64_t> col_begin;    // (H * nb + 1)
  std::vector<int32_t> query_block;  // (nnz)
  std::vector<uint8_t> query_full;   // (nnz)

  std::vector<int64_t> pairs;  // (H) allowed (i, j) pairs per head

  int64_t nnz() const { return static_cast<int64_t>(key_block.size()); }
  int64_t nnz_head(int h) const { return row_begin[(h + 1) * blocks] - row_begin[h * blocks]; }
  int64_t full_blocks_head(int h) const;
  int64_t causal_pairs() const { return T * (T + 1) / 2; }              // per head
  int64_t causal_blocks() const { return blocks * (blocks + 1) / 2; }   // per head
  int64_t total_pairs() const;
};

// Block sizes a layout may use.
bool valid_block_size(int block);

// Builds the layout of `pattern` at `layer` for context T and block size BS.
BlockLayout build_block_layout(const Pattern& pattern, int layer, int64_t T, int block);

}  // namespace spt
