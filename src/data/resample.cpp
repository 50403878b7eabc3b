#include "data/resample.h"

#include <cmath>

#include "core/error.h"

#ifdef SPT_HAVE_SOXR
#include <soxr.h>
#endif

namespace spt {

#ifdef SPT_HAVE_SOXR
bool resampling_available() { return true; }
#else
bool resampling_available() { return false; }
#endif

std::vector<float> resample(const std::vector<float>& samples, int from_rate, int to_rate) {
  SPT_CHECK(from_rate > 0 && to_rate > 0, "cannot resample from ", from_rate, " Hz to ", to_rate,
            " Hz: rates must be positive");
  if (from_rate == to_rate) return samples;
#ifdef SPT_HAVE_SOXR
  const double ratio = static_cast<double>(to_rate) / from_rate;
  const size_t out_frames = static_cast<size_t>(std::llround(static_cast<double>(samples.size()) * ratio));
  std::vector<float> out(out_frames);
  size_t done = 0;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  const soxr_error_t error = soxr_oneshot(from_rate, to_rate, 1, samples.data(), samples.size(), nullptr,
                                          out.data(), out.size(), &done, &io, &quality, nullptr);
  SPT_CHECK(error == nullptr, "libsoxr cannot resample ", from_rate, " Hz to ", to_rate, " Hz: ", error);
  out.resize(done);
  return out;
#else
  throw Error(message("cannot resample ", from_rate, " Hz audio to ", to_rate,
                      " Hz: spt was built without libsoxr; install libsoxr-dev and rebuild, or give recordings at ",
                      to_rate, " Hz"));
#endif
}

}  // namespace spt
