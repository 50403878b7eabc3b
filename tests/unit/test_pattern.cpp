// Pattern predicate, enumerations and block layouts against brute-force definitions
// written here directly from the paper's formulas (Child et al. 2019, section 4.3).
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "pattern/block_layout.h"
#include "pattern/pattern.h"
#include "brute_pattern.h"
#include "test_support.h"

namespace spt {
namespace {

std::vector<PatternSpec> all_specs() {
  std::vector<PatternSpec> specs;
  const CombineMode modes[] = {CombineMode::merged, CombineMode::interleaved, CombineMode::heads};
  specs.push_back({PatternKind::dense, 1, 1, 1, CombineMode::merged, 1});
  specs.push_back({PatternKind::dense, 1, 1, 1, CombineMode::merged, 3});
  for (int l : {1, 3, 8, 16}) specs.push_back({PatternKind::local, l, 1, 1, CombineMode::merged, 2});
  for (CombineMode mode : modes)
    for (int l : {1, 4, 5, 16})
      for (int heads : {2, 3}) specs.push_back({PatternKind::strided, l, 1, 1, mode, heads});
  for (CombineMode mode : modes)
    for (auto [l, c, v] : std::vector<std::tuple<int, int, int>>{{4, 1, 1}, {8, 2, 2}, {8, 2, 4}, {16, 4, 3}, {5, 5, 1}, {6, 2, 3}})
      for (int heads : {4}) specs.push_back({PatternKind::fixed, l, c, v, mode, heads});
  specs.push_back({PatternKind::strided, 8, 1, 1, CombineMode::merged, 1});
  specs.push_back({PatternKind::fixed, 8, 3, 1, CombineMode::interleaved, 1});
  return specs;
}

TEST(Pattern, PredicateMatchesDefinitions) {
  for (const PatternSpec& spec : all_specs()) {
    const Pattern pattern(spec);
    for (int layer : {0, 1, 2, 5})
      for (int h = 0; h < spec.heads; ++h) {
        const HeadMask mask = pattern.head_mask(layer, h);
        for (int64_t i = 0; i < 40; ++i)
          for (int64_t j = 0; j < 40; ++j)
            ASSERT_EQ(mask.allows(i, j), brute_allows(spec, layer, h, i, j))
                << pattern.describe() << " layer " << layer << " head " << h << " i " << i << " j " << j;
      }
  }
}

TEST(Pattern, WindowHoldsStridePositions) {
  const Pattern local({PatternKind::local, 4, 1, 1, CombineMode::merged, 1});
  std::vector<int32_t> keys;
  local.head_mask(0, 0).row_keys(10, keys);
  EXPECT_EQ(keys, (std::vector<int32_t>{7, 8, 9, 10}));
  local.head_mask(0, 0).row_keys(2, keys);
  EXPECT_EQ(keys, (std::vector<int32_t>{0, 1, 2}));
}

TEST(Pattern, SummarySubBlocksPerHead) {
  const Pattern fixed({PatternKind::fixed, 8, 2, 3, CombineMode::merged, 4});
  for (int h = 0; h < 4; ++h) {
    const HeadMask m = fixed.head_mask(0, h);
    EXPECT_EQ(m.summary_hi, 8 - (h % 3) * 2);
    EXPECT_EQ(m.summary_lo, 8 - (h % 3 + 1) * 2);
  }
}

// Row and column lists, and counts over ranges, agree with the predicate for many T,
// including T < l and T not a multiple of l.
TEST(Pattern, EnumerationsMatchPredicate) {
  std::vector<int32_t> keys, queries;
  for (const PatternSpec& spec : all_specs()) {
    const Pattern pattern(spec);
    for (int64_t T : {1, 3, 17, 37}) {
      for (int layer : {0, 1})
        for (int h = 0; h < spec.heads; ++h) {
          const HeadMask mask = pattern.head_mask(layer, h);
          for (int64_t i = 0; i < T; ++i) {
            std::vector<int32_t> expected;
            for (int64_t j = 0; j < T; ++j)
              if (brute_allows(spec, layer, h, i, j)) expected.push_back(static_cast<int32_t>(j));
            mask.row_keys(i, keys);
            ASSERT_EQ(keys, expected) << pattern.describe() << " T " << T << " i " << i;
            for (int64_t a = 0; a <= T; a += 3)
              for (int64_t b = a; b <= T + 2; b += 5) {
                int64_t count = 0;
                for (int32_t j : expected) count += (j >= a && j < b);
                ASSERT_EQ(mask.count_keys(i, a, b), count) << pattern.describe() << " i " << i << " [" << a << "," << b << ")";
              }
          }
          for (int64_t j = 0; j < T; ++j) {
            std::vector<int32_t> expected;
            for (int64_t i = 0; i < T; ++i)
              if (brute_allows(spec, layer, h, i, j)) expected.push_back(static_cast<int32_t>(i));
            mask.col_queries(j, T, queries);
            ASSERT_EQ(queries, expected) << pattern.describe() << " T " << T << " j " << j;
          }
        }
    }
  }
}

TEST(Pattern, RejectsImpossibleConfigs) {
  auto message_of = [](const PatternSpec& spec) { return testing_support::error_of([&] { Pattern p(spec); }); };
  EXPECT_NE(message_of({PatternKind::strided, 0, 1, 1, CombineMode::merged, 2}).find("stride 0"), std::string::npos);
  EXPECT_NE(message_of({PatternKind::fixed, 8, 9, 1, CombineMode::merged, 2}).find("c = 9"), std::string::npos);
  EXPECT_NE(message_of({PatternKind::fixed, 8, 0, 1, CombineMode::merged, 2}).find("c = 0"), std::string::npos);
  EXPECT_NE(message_of({PatternKind::fixed, 8, 4, 3, CombineMode::merged, 4}).find("v = 3"), std::string::npos);
  EXPECT_NE(message_of({PatternKind::fixed, 16, 2, 4, CombineMode::merged, 2}).find("v = 4"), std::string::npos);
  EXPECT_NE(message_of({PatternKind::strided, 8, 1, 1, CombineMode::heads, 1}).find("at least 2 heads"), std::string::npos);
  EXPECT_NE(message_of({PatternKind::dense, 1, 1, 1, CombineMode::merged, 0}).find("heads 0"), std::string::npos);
  EXPECT_THROW(parse_pattern_kind("sparse"), Error);
  EXPECT_THROW(parse_combine_mode("union"), Error);
  EXPECT_THROW(build_block_layout(Pattern({PatternKind::dense, 1, 1, 1, CombineMode::merged, 1}), 0, 64, 24), Error);
  EXPECT_THROW(build_block_layout(Pattern({PatternKind::dense, 1, 1, 1, CombineMode::merged, 1}), 0, 0, 16), Error);
}

// Every element of every block is checked: listed blocks hold exactly the allowed
// pairs (full blocks hold only allowed pairs, partial blocks at least one disallowed
// in-range pair), unlisted blocks hold none, and the transposed form is the same set.
void check_layout(const PatternSpec& spec, int layer, int64_t T, int BS) {
  const Pattern pattern(spec);
  const BlockLayout layout = build_block_layout(pattern, layer, T, BS);
  const int64_t nb = (T + BS - 1) / BS;
  ASSERT_EQ(layout.blocks, nb);
  std::vector<uint8_t> listed(nb * nb);
  for (int h = 0; h < spec.heads; ++h) {
    std::fill(listed.begin(), listed.end(), 0);
    int64_t pairs = 0;
    for (int64_t qb = 0; qb < nb; ++qb) {
      int prev = -1;
      for (int64_t e = layout.row_begin[h * nb + qb]; e < layout.row_begin[h * nb + qb + 1]; ++e) {
        ASSERT_GT(layout.key_block[e], prev) << "key blocks must ascend";
        prev = layout.key_block[e];
        listed[qb * nb + layout.key_block[e]] = layout.key_full[e] ? 2 : 1;
      }
    }
    for (int64_t qb = 0; qb < nb; ++qb)
      for (int64_t kb = 0; kb < nb; ++kb) {
        int64_t allowed = 0, in_range = 0;
        for (int64_t i = qb * BS; i < std::min(T, (qb + 1) * BS); ++i)
          for (int64_t j = kb * BS; j < std::min(T, (kb + 1) * BS); ++j) {
            ++in_range;
            allowed += brute_allows(spec, layer, h, i, j);
          }
        pairs += allowed;
        const int expected = allowed == 0 ? 0 : (allowed == in_range ? 2 : 1);
        ASSERT_EQ(listed[qb * nb + kb], expected)
            << pattern.describe() << " T " << T << " BS " << BS << " head " << h << " block (" << qb << "," << kb << ")";
      }
    EXPECT_EQ(layout.pairs[h], pairs);
    for (int64_t kb = 0; kb < nb; ++kb) {
      int prev = -1;
      for (int64_t e = layout.col_begin[h * nb + kb]; e < layout.col_begin[h * nb + kb + 1]; ++e) {
        ASSERT_GT(layout.query_block[e], prev);
        prev = layout.query_block[e];
        ASSERT_EQ(listed[layout.query_block[e] * nb + kb], layout.query_full[e] ? 2 : 1);
      }
    }
  }
  EXPECT_EQ(layout.col_begin.back(), layout.nnz());
}

TEST(PatternLayout, CoversMaskExactlyAtEveryBlockSize) {
  for (int BS : {16, 32, 64, 128}) {
    for (int64_t T : {int64_t{1}, int64_t{BS}, int64_t{3 * BS + 5}, int64_t{260}}) {
      check_layout({PatternKind::dense, 1, 1, 1, CombineMode::merged, 1}, 0, T, BS);
      check_layout({PatternKind::local, 24, 1, 1, CombineMode::merged, 1}, 0, T, BS);
      for (CombineMode mode : {CombineMode::merged, CombineMode::interleaved, CombineMode::heads}) {
        check_layout({PatternKind::strided, 16, 1, 1, mode, 2}, 1, T, BS);
        check_layout({PatternKind::strided, 20, 1, 1, mode, 2}, 0, T, BS);
        check_layout({PatternKind::fixed, 32, 8, 2, mode, 2}, 1, T, BS);
        check_layout({PatternKind::fixed, 24, 4, 1, mode, 2}, 0, T, BS);
      }
    }
  }
}

TEST(PatternLayout, Statistics) {
  const Pattern dense({PatternKind::dense, 1, 1, 1, CombineMode::merged, 2});
  const BlockLayout layout = build_block_layout(dense, 0, 256, 16);
  EXPECT_EQ(layout.total_pairs(), 2 * 256 * 257 / 2);
  EXPECT_EQ(layout.nnz_head(0), layout.causal_blocks());
  EXPECT_EQ(layout.full_blocks_head(0), layout.causal_blocks() - 16);  // diagonal blocks are partial
  // strided l = 128 at T = 16384 keeps about (128 + T / (2 * 128)) keys per query.
  const Pattern strided({PatternKind::strided, 128, 1, 1, CombineMode::merged, 1});
  const BlockLayout sparse = build_block_layout(strided, 0, 16384, 64);
  const double density = static_cast<double>(sparse.total_pairs()) / sparse.causal_pairs();
  EXPECT_GT(density, 0.015);
  EXPECT_LT(density, 0.030);
}

}  // namespace
}  // namespace spt
