#include "pattern/pattern.h"

#include <algorithm>
#include <iterator>

#include "core/error.h"

namespace spt {

PatternKind parse_pattern_kind(const std::string& name) {
  if (name == "dense") return PatternKind::dense;
  if (name == "local") return PatternKind::local;
  if (name == "strided") return PatternKind::strided;
  if (name == "fixed") return PatternKind::fixed;
  throw Error(message("unknown pattern '", name, "': use dense, local, strided or fixed"));
}

CombineMode parse_combine_mode(const std::string& name) {
  if (name == "merged") return CombineMode::merged;
  if (name == "interleaved") return CombineMode::interleaved;
  if (name == "heads") return CombineMode::heads;
  throw Error(message("unknown combination mode '", name, "': use merged, interleaved or heads"));
}

std::string to_string(PatternKind kind) {
  switch (kind) {
    case PatternKind::dense: return "dense";
    case PatternKind::local: return "local";
    case PatternKind::strided: return "strided";
    case PatternKind::fixed: return "fixed";
  }
  return "?";
}

std::string to_string(CombineMode mode) {
  switch (mode) {
    case CombineMode::merged: return "merged";
    case CombineMode::interleaved: return "interleaved";
    case CombineMode::heads: return "heads";
  }
  return "?";
}

namespace {

// Number of x in [0, n) with x mod l == r (0 <= r < l), n >= 0.
int64_t count_residue(int64_t n, int64_t l, int64_t r) { return n <= 0 ? 0 : (n + l - 1 - r) / l; }

// Number of x in [0, n) with x mod l in [lo, hi), n >= 0.
int64_t count_residue_range(int64_t n, int64_t l, int64_t lo, int64_t hi) {
  if (n <= 0) return 0;
  return (n / l) * (hi - lo) + std::clamp<int64_t>(n % l - lo, 0, hi - lo);
}

int64_t overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1) {
  return std::max<int64_t>(0, std::min(a1, b1) - std::max(a0, b0));
}

void merge_into(const std::vector<int32_t>& a, const std::vector<int32_t>& b, std::vector<int32_t>& out) {
  out.clear();
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
}

}  // namespace

bool HeadMask::in_a1(int64_t i, int64_t j) const {
  if (j > i || j < 0) return false;
  switch (kind) {
    case PatternKind::dense: return true;
    case PatternKind::local:
    case PatternKind::strided: return i - j < stride;
    case PatternKind::fixed: return j / stride == i / stride;
  }
  return false;
}

bool HeadMask::in_a2(int64_t i, int64_t j) const {
  if (j > i || j < 0) return false;
  switch (kind) {
    case PatternKind::strided: return (i - j) % stride == 0;
    case PatternKind::fixed: {
      const int64_t r = j % stride;
      return r >= summary_lo && r < summary_hi;
    }
    default: return false;
  }
}

namespace {

void a1_row(const HeadMask& m, int64_t i, std::vector<int32_t>& out) {
  out.clear();
  int64_t first = 0;
  if (m.kind == PatternKind::local || m.kind == PatternKind::strided) first = std::max<int64_t>(0, i - m.stride + 1);
  if (m.kind == PatternKind::fixed) first = (i / m.stride) * m.stride;
  for (int64_t j = first; j <= i; ++j) out.push_back(static_cast<int32_t>(j));
}

void a2_row(const HeadMask& m, int64_t i, std::vector<int32_t>& out) {
  out.clear();
  const int64_t l = m.stride;
  if (m.kind == PatternKind::strided) {
    for (int64_t j = i % l; j <= i; j += l) out.push_back(static_cast<int32_t>(j));
  } else if (m.kind == PatternKind::fixed) {
    for (int64_t base = 0; base <= i; base += l) {
      const int64_t end = std::min(base + m.summary_hi, i + 1);
      for (int64_t j = base + m.summary_lo; j < end; ++j) out.push_back(static_cast<int32_t>(j));
    }
  }
}

void a1_col(const HeadMask& m, int64_t j, int64_t T, std::vector<int32_t>& out) {
  out.clear();
  int64_t last = T - 1;
  if (m.kind == PatternKind::local || m.kind == PatternKind::strided) last = std::min(last, j + m.stride - 1);
  if (m.kind == PatternKind::fixed) last = std::min(last, (j / m.stride + 1) * m.stride - 1);
  for (int64_t i = j; i <= last; ++i) out.push_back(static_cast<int32_t>(i));
}

void a2_col(const HeadMask& m, int64_t j, int64_t T, std::vector<int32_t>& out) {
  out.clear();
  if (m.kind == PatternKind::strided) {
    for (int64_t i = j; i < T; i += m.stride) out.push_back(static_cast<int32_t>(i));
  } else if (m.kind == PatternKind::fixed) {
    const int64_t r = j % m.stride;
    if (r >= m.summary_lo && r < m.summary_hi)
      for (int64_t i = j; i < T; ++i) out.push_back(static_cast<int32_t>(i));
  }
}

// Allowed keys of A(1) for query i in [begin, end), O(1).
int64_t a1_count(const HeadMask& m, int64_t i, int64_t begin, int64_t end) {
  int64_t first = 0;
  if (m.kind == PatternKind::local || m.kind == PatternKind::strided) first = i - m.stride + 1;
  if (m.kind == PatternKind::fixed) first = (i / m.stride) * m.stride;
  return overlap(begin, end, std::max<int64_t>(first, 0), i + 1);
}

int64_t a2_count(const HeadMask& m, int64_t i, int64_t begin, int64_t end) {
  const int64_t hi = std::min(end, i + 1);
  const int64_t lo = std::max<int64_t>(begin, 0);
  if (hi <= lo) return 0;
  if (m.kind == PatternKind::strided) {
    const int64_t r = i % m.stride;
    return count_residue(hi, m.stride, r) - count_residue(lo, m.stride, r);
  }
  if (m.kind == PatternKind::fixed)
    return count_residue_range(hi, m.stride, m.summary_lo, m.summary_hi) -
           count_residue_range(lo, m.stride, m.summary_lo, m.summary_hi);
  return 0;
}

// Keys in both parts for query i in [begin, end).
int64_t both_count(const HeadMask& m, int64_t i, int64_t begin, int64_t end) {
  if (m.kind == PatternKind::strided) return (begin <= i && i < end) ? 1 : 0;  // only j = i is in both
  if (m.kind == PatternKind::fixed) {
    const int64_t own = (i / m.stride) * m.stride;
    return a2_count(m, i, std::max(begin, own), end);
  }
  return 0;
}

}  // namespace

void HeadMask::row_keys(int64_t i, std::vector<int32_t>& keys) const {
  if (use_a1 && !use_a2) return a1_row(*this, i, keys);
  if (use_a2 && !use_a1) return a2_row(*this, i, keys);
  thread_local std::vector<int32_t> first, second;
  a1_row(*this, i, first);
  a2_row(*this, i, second);
  merge_into(first, second, keys);
}

void HeadMask::col_queries(int64_t j, int64_t T, std::vector<int32_t>& queries) const {
  if (use_a1 && !use_a2) return a1_col(*this, j, T, queries);
  if (use_a2 && !use_a1) return a2_col(*this, j, T, queries);
  thread_local std::vector<int32_t> first, second;
  a1_col(*this, j, T, first);
  a2_col(*this, j, T, second);
  merge_into(first, second, queries);
}

int64_t HeadMask::count_keys(int64_t i, int64_t begin, int64_t end) const {
  int64_t count = 0;
  if (use_a1) count += a1_count(*this, i, begin, end);
  if (use_a2) count += a2_count(*this, i, begin, end);
  if (use_a1 && use_a2) count -= both_count(*this, i, begin, end);
  return count;
}

Pattern::Pattern(const PatternSpec& spec) : spec_(spec) {
  SPT_CHECK(spec.heads >= 1, "heads ", spec.heads, " must be at least 1");
  if (spec.kind == PatternKind::dense) return;
  SPT_CHECK(spec.stride >= 1, "stride ", spec.stride, " must be at least 1 (--stride)");
  if (spec.kind == PatternKind::fixed) {
    SPT_CHECK(spec.summary >= 1 && spec.summary <= spec.stride, "summary width c = ", spec.summary,
              " must be in [1, stride ", spec.stride, "] (--summary)");
    SPT_CHECK(spec.summary_blocks >= 1, "summary blocks v = ", spec.summary_blocks, " must be at least 1 (--summary-blocks)");
    SPT_CHECK(static_cast<int64_t>(spec.summary_blocks) * spec.summary <= spec.stride, "summary blocks v = ",
              spec.summary_blocks, " times summary width c = ", spec.summary, " exceeds the stride ", spec.stride,
              ": use v <= ", spec.stride / spec.summary);
    SPT_CHECK(spec.summary_blocks <= spec.heads, "summary blocks v = ", spec.summary_blocks, " exceeds the ",
              spec.heads, " heads: sub-blocks beyond the head count are never used; use v <= ", spec.heads);
  }
  const bool two_parts = spec.kind == PatternKind::strided || spec.kind == PatternKind::fixed;
  if (two_parts && spec.mode == CombineMode::heads)
    SPT_CHECK(spec.heads >= 2, "mode 'heads' gives head h the part A(h mod 2) and needs at least 2 heads, got ",
              spec.heads, ": use --mode merged or more heads");
}

HeadMask Pattern::head_mask(int layer, int head) const {
  SPT_CHECK(head >= 0 && head < spec_.heads, "head ", head, " out of range [0, ", spec_.heads, ")");
  SPT_CHECK(layer >= 0, "layer ", layer, " must be non-negative");
  HeadMask mask;
  mask.kind = spec_.kind;
  mask.stride = spec_.kind == PatternKind::dense ? 1 : spec_.stride;
  if (spec_.kind == PatternKind::fixed) {
    const int sub = head % spec_.summary_blocks;
    mask.summary_lo = spec_.stride - (sub + 1) * spec_.summary;
    mask.summary_hi = spec_.stride - sub * spec_.summary;
  }
  const bool two_parts = spec_.kind == PatternKind::strided || spec_.kind == PatternKind::fixed;
  mask.use_a1 = true;
  mask.use_a2 = two_parts;
  if (two_parts && spec_.mode != CombineMode::merged) {
    const int part = (spec_.mode == CombineMode::interleaved ? layer : head) % 2;
    mask.use_a1 = part == 0;
    mask.use_a2 = part == 1;
  }
  return mask;
}

std::string Pattern::describe() const {
  std::string text = to_string(spec_.kind);
  if (spec_.kind == PatternKind::local || spec_.kind == PatternKind::strided)
    text += message("(l=", spec_.stride, ")");
  if (spec_.kind == PatternKind::fixed)
    text += message("(l=", spec_.stride, ", c=", spec_.summary, ", v=", spec_.summary_blocks, ")");
  if (spec_.kind == PatternKind::strided || spec_.kind == PatternKind::fixed) text += ", " + to_string(spec_.mode);
  return text + message(", ", spec_.heads, spec_.heads == 1 ? " head" : " heads");
}

AttentionPlan make_plan(const Pattern& pattern, int layer) {
  AttentionPlan plan;
  for (int h = 0; h < pattern.heads(); ++h) plan.heads.push_back(pattern.head_mask(layer, h));
  return plan;
}

}  // namespace spt
