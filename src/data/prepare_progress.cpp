#include "data/prepare_progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace spt {

PrepareProgress::PrepareProgress(bool enabled, size_t total, std::string unit)
    : enabled_(enabled), terminal_(::isatty(2) != 0), total_(total), step_(std::max<size_t>(1, total / 10)), next_(step_),
      unit_(std::move(unit)) {}

void PrepareProgress::update(size_t done, const std::string& detail) {
  if (!enabled_) return;
  const bool last = done >= total_;
  // Items may come in runs (array files), so a tenth is passed rather than hit exactly.
  if (!terminal_ && !last && done < next_) return;
  next_ = (done / step_ + 1) * step_;
  std::fprintf(stderr, "%sprepare: %zu/%zu %s%s%s%s", terminal_ ? "\r" : "", done, total_, unit_.c_str(),
               detail.empty() ? "" : ", ", detail.c_str(), terminal_ && !last ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace spt
