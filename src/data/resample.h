// Sample-rate conversion of mono audio with libsoxr (its high-quality preset: a
// linear-phase low-pass at the lower Nyquist). libsoxr is optional in the build
// (SPT_HAVE_SOXR); without it a conversion between two different rates is an error.
#pragma once

#include <vector>

namespace spt {

bool resampling_available();

// `samples` at from_rate Hz as samples at to_rate Hz: round(n * to_rate / from_rate)
// of them. Equal rates return the input untouched (no library needed).
std::vector<float> resample(const std::vector<float>& samples, int from_rate, int to_rate);

}  // namespace spt
