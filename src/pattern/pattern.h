// The paper's factorized attention patterns as data (Child et al. 2019, section 4.3).
//
// Every pattern is causal (j <= i). A pattern has up to two parts A(1), A(2):
//   dense          A(1) = { j <= i }
//   local(l)       A(1) = { i - l < j <= i }                       (window of l positions)
//   strided(l)     A(1) = { i - l < j <= i } ("row"),  A(2) = { j <= i : (i - j) mod l == 0 } ("column")
//   fixed(l, c)    A(1) = { j <= i : floor(j / l) == floor(i / l) } (own block),
//                  A(2) = { j <= i : j mod l in [l - (s + 1) c, l - s c) } ("summary"),
//                  s = h mod v for head h with v summary sub-blocks (v = 1: the last c columns).
// The window holds l positions including i itself, as in the released code (the
// paper writes {max(0, i - l) .. i}, which holds l + 1).
// Combination of A(1) and A(2) for strided and fixed:
//   merged       every head of every layer attends to A(1) U A(2);
//   interleaved  layer r uses A(r mod 2) in every head;
//   heads        head h uses A(h mod 2) in every layer.
// A query whose set is empty (possible with interleaved/heads fixed, where early
// positions have no summary column yet) attends to nothing: its output is zero.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt {

enum class PatternKind { dense, local, strided, fixed };
enum class CombineMode { merged, interleaved, heads };

PatternKind parse_pattern_kind(const std::string& name);
CombineMode parse_combine_mode(const std::string& name);
std::string to_string(PatternKind kind);
std::string to_string(CombineMode mode);

struct PatternSpec {
  PatternKind kind = PatternKind::dense;
  int stride = 128;          // l (local, strided, fixed)
  int summary = 32;          // c (fixed)
  int summary_blocks = 1;    // v (fixed): head h uses sub-block h mod v from the end
  CombineMode mode = CombineMode::merged;
  int heads = 1;             // H
};

// The resolved mask of one (layer, head): which parts are active and their geometry.
// All queries i and keys j are 0-based positions; all lists come out ascending.
struct HeadMask {
  PatternKind kind = PatternKind::dense;
  int stride = 1;            // l
  int summary_lo = 0;        // fixed: summary columns are j mod l in [summary_lo, summary_hi)
  int summary_hi = 0;
  bool use_a1 = true;
  bool use_a2 = false;

  bool in_a1(int64_t i, int64_t j) const;
  bool in_a2(int64_t i, int64_t j) const;
  bool allows(int64_t i, int64_t j) const { return (use_a1 && in_a1(i, j)) || (use_a2 && in_a2(i, j)); }
  // Keys j allowed for query i, ascending, written into `keys` (replaces its content).
  void row_keys(int64_t i, std::vector<int32_t>& keys) const;
  // Queries i < T allowed to attend to key j, ascending (the transposed view).
  void col_queries(int64_t j, int64_t T, std::vector<int32_t>& queries) const;
  // Number of allowed keys j in [begin, end) for query i, in O(1).
  int64_t count_keys(int64_t i, int64_t begin, int64_t end) const;
};

class Pattern {
 public:
  // Validates the spec; throws spt::Error naming the bad value.
  explicit Pattern(const PatternSpec& spec);
  const PatternSpec& spec() const { return spec_; }
  int heads() const { return spec_.heads; }
  HeadMask head_mask(int layer, int head) const;
  bool allows(int layer, int head, int64_t i, int64_t j) const { return head_mask(layer, head).allows(i, j); }
  std::string describe() const;  // e.g. "fixed(l=128, c=32, v=1), merged, 8 heads"

 private:
  PatternSpec spec_;
};

// What a backend executes for one layer: the resolved mask of every head.
struct AttentionPlan {
  std::vector<HeadMask> heads;  // (H)
};
AttentionPlan make_plan(const Pattern& pattern, int layer);

}  // namespace spt
