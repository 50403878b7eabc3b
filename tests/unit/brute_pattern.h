// Brute-force pattern definitions for tests, written directly from the paper's
// formulas (Child et al. 2019, section 4.3), independently of src/pattern.
#pragma once

#include <cstdint>

#include "pattern/pattern.h"

namespace spt {

// The definitions, written independently of src/pattern.
inline bool brute_a1(PatternKind kind, int64_t l, int64_t i, int64_t j) {
  if (j > i) return false;
  switch (kind) {
    case PatternKind::dense: return true;
    case PatternKind::local:
    case PatternKind::strided: return j > i - l;  // l positions: i-l+1 .. i
    case PatternKind::fixed: return j / l == i / l;
  }
  return false;
}

inline bool brute_a2(PatternKind kind, int64_t l, int64_t c, int64_t v, int64_t head, int64_t i, int64_t j) {
  if (j > i) return false;
  if (kind == PatternKind::strided) return (i - j) % l == 0;
  if (kind == PatternKind::fixed) {
    const int64_t sub = head % v;
    const int64_t lo = l - (sub + 1) * c, hi = l - sub * c;
    return j % l >= lo && j % l < hi;
  }
  return false;
}

inline bool brute_allows(const PatternSpec& s, int layer, int head, int64_t i, int64_t j) {
  const bool a1 = brute_a1(s.kind, s.stride, i, j);
  const bool a2 = brute_a2(s.kind, s.stride, s.summary, s.summary_blocks, head, i, j);
  if (s.kind == PatternKind::dense || s.kind == PatternKind::local) return a1;
  switch (s.mode) {
    case CombineMode::merged: return a1 || a2;
    case CombineMode::interleaved: return layer % 2 == 0 ? a1 : a2;
    case CombineMode::heads: return head % 2 == 0 ? a1 : a2;
  }
  return false;
}

}  // namespace spt
