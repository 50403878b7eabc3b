#include "pattern/block_layout.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/parallel.h"

namespace spt {

bool valid_block_size(int block) { return block == 16 || block == 32 || block == 64 || block == 128; }

int64_t BlockLayout::full_blocks_head(int h) const {
  int64_t full = 0;
  for (int64_t e = row_begin[h * blocks]; e < row_begin[(h + 1) * blocks]; ++e) full += key_full[e];
  return full;
}

int64_t BlockLayout::total_pairs() const { return std::accumulate(pairs.begin(), pairs.end(), int64_t{0}); }

namespace {

struct BlockEntry {
  int32_t key_block;
  uint8_t full;
  int64_t pairs;
};

// Key blocks of one (head, query block), found by counting allowed keys per row.
std::vector<BlockEntry> query_block_entries(const HeadMask& mask, int64_t T, int block, int64_t qb) {
  std::vector<BlockEntry> entries;
  const int64_t q0 = qb * block, q1 = std::min(T, q0 + block);
  for (int64_t kb = 0; kb <= qb; ++kb) {
    const int64_t k0 = kb * block, k1 = std::min(T, k0 + block);
    int64_t count = 0;
    for (int64_t i = q0; i < q1; ++i) count += mask.count_keys(i, k0, k1);
    if (count == 0) continue;
    const bool full = count == (q1 - q0) * (k1 - k0);
    entries.push_back({static_cast<int32_t>(kb), static_cast<uint8_t>(full), count});
  }
  return entries;
}

void build_transpose(BlockLayout& layout) {
  const int64_t rows = layout.heads * layout.blocks;
  std::vector<int64_t> counts(rows + 1, 0);
  for (int h = 0; h < layout.heads; ++h)
    for (int64_t qb = 0; qb < layout.blocks; ++qb)
      for (int64_t e = layout.row_begin[h * layout.blocks + qb]; e < layout.row_begin[h * layout.blocks + qb + 1]; ++e)
        ++counts[h * layout.blocks + layout.key_block[e] + 1];
  std::partial_sum(counts.begin(), counts.end(), counts.begin());
  layout.col_begin = counts;
  layout.query_block.resize(layout.nnz());
  layout.query_full.resize(layout.nnz());
  std::vector<int64_t> cursor(counts.begin(), counts.end() - 1);
  // Query blocks are visited in ascending order, so each column list comes out sorted.
  for (int h = 0; h < layout.heads; ++h)
    for (int64_t qb = 0; qb < layout.blocks; ++qb)
      for (int64_t e = layout.row_begin[h * layout.blocks + qb]; e < layout.row_begin[h * layout.blocks + qb + 1]; ++e) {
        const int64_t slot = cursor[h * layout.blocks + layout.key_block[e]]++;
        layout.query_block[slot] = static_cast<int32_t>(qb);
        layout.query_full[slot] = layout.key_full[e];
      }
}

}  // namespace

BlockLayout build_block_layout(const Pattern& pattern, int layer, int64_t T, int block) {
  SPT_CHECK(T >= 1, "context length T = ", T, " must be at least 1 (--ctx)");
  SPT_CHECK(T <= (int64_t{1} << 30), "context length T = ", T, " exceeds 2^30, the largest a layout indexes");
  SPT_CHECK(valid_block_size(block), "block size ", block, " is not supported: use 16, 32, 64 or 128 (--block)");
  BlockLayout layout;
  layout.T = T;
  layout.block = block;
  layout.heads = pattern.heads();
  layout.blocks = (T + block - 1) / block;
  const AttentionPlan plan = make_plan(pattern, layer);
  const int64_t rows = layout.heads * layout.blocks;
  std::vector<std::vector<BlockEntry>> per_row(rows);
  parallel_for_dynamic(rows, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      per_row[r] = query_block_entries(plan.heads[r / layout.blocks], T, block, r % layout.blocks);
  });
  layout.row_begin.assign(rows + 1, 0);
  layout.pairs.assign(layout.heads, 0);
  for (int64_t r = 0; r < rows; ++r) {
    layout.row_begin[r + 1] = layout.row_begin[r] + static_cast<int64_t>(per_row[r].size());
    for (const BlockEntry& entry : per_row[r]) {
      layout.key_block.push_back(entry.key_block);
      layout.key_full.push_back(entry.full);
      layout.pairs[r / layout.blocks] += entry.pairs;
    }
  }
  build_transpose(layout);
  return layout;
}

}  // namespace spt
