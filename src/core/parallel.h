// Threading for the CPU backend. Work is split into static contiguous chunks so
// that the result never depends on scheduling: the same inputs give the same bits.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace spt {

inline int num_threads() { return omp_get_max_threads(); }

// Calls fn(begin, end) on disjoint chunks covering [0, n), in parallel.
// min_chunk keeps tiny loops on one thread.
template <typename Fn>
void parallel_for(int64_t n, Fn&& fn, int64_t min_chunk = 1) {
  if (n <= 0) return;
  const int64_t max_parts = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  const int parts = static_cast<int>(std::min<int64_t>(num_threads(), max_parts));
  if (parts <= 1 || omp_in_parallel()) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel for schedule(static, 1) num_threads(parts)
  for (int part = 0; part < parts; ++part) {
    const int64_t begin = n * part / parts;
    const int64_t end = n * (part + 1) / parts;
    fn(begin, end);
  }
}

// Dynamic variant for uneven work (causal rows): chunks of `grain` items handed out
// in order. Use only where each item writes its own outputs.
template <typename Fn>
void parallel_for_dynamic(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t chunks = (n + grain - 1) / grain;
  if (chunks <= 1 || num_threads() <= 1 || omp_in_parallel()) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    fn(chunk * grain, std::min(n, (chunk + 1) * grain));
  }
}

}  // namespace spt
