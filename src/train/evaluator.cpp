#include "train/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/progress.h"

namespace spt {

EvalResult evaluate_split(Model& model, const TokenSplit& split, int batch, int64_t max_windows,
                          const EvalHooks& hooks) {
  const std::unique_ptr<Engine> engine = make_engine(EngineOptions{"cpu", "", false}, model, nullptr);
  return evaluate_split(*engine, model.config().ctx, split, batch, max_windows, hooks);
}

EvalResult evaluate_split(Engine& engine, int64_t T, const TokenSplit& split, int batch, int64_t max_windows,
                          const EvalHooks& hooks) {
  SPT_CHECK(batch >= 1, "evaluation batch ", batch, " must be at least 1 (--batch)");
  const auto start = std::chrono::steady_clock::now();
  std::vector<EvalWindow> windows = eval_windows(split, T);
  EvalResult result;
  result.split_windows = static_cast<int64_t>(windows.size());
  if (max_windows > 0 && static_cast<int64_t>(windows.size()) > max_windows) windows.resize(max_windows);
  std::vector<uint8_t> tokens;  // (batch, T)
  std::vector<float> losses;    // (batch, T)
  double nats = 0.0;
  size_t first = 0;
  for (; first < windows.size(); first += batch) {
    if (hooks.should_stop && hooks.should_stop()) {
      result.interrupted = true;
      break;
    }
    const int n = static_cast<int>(std::min<size_t>(batch, windows.size() - first));
    tokens.resize(static_cast<size_t>(n) * T);
    losses.resize(static_cast<size_t>(n) * T);
    for (int w = 0; w < n; ++w) {
      const uint8_t* src = split.data() + windows[first + w].start;
      std::copy(src, src + T, tokens.begin() + static_cast<int64_t>(w) * T);
    }
    engine.evaluate(tokens.data(), n, losses.data());
    for (int w = 0; w < n; ++w)
      for (int64_t t = windows[first + w].score_from; t < T; ++t) {
        nats += losses[static_cast<size_t>(w) * T + t];
        ++result.tokens;
      }
    if (hooks.on_batch) hooks.on_batch(static_cast<int64_t>(first) + n, static_cast<int64_t>(windows.size()));
  }
  result.windows = static_cast<int64_t>(std::min(first, windows.size()));
  result.skipped_tokens = short_clip_tokens(split, T);
  result.nats = result.tokens > 0 ? nats / static_cast<double>(result.tokens) : 0.0;
  result.bits_per_dim = result.nats / std::log(2.0);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

EvalResult evaluate_with_progress(const std::string& label, Engine& engine, int64_t T, const TokenSplit& split,
                                  int batch, int64_t max_windows, const std::function<bool()>& should_stop) {
  int64_t windows = static_cast<int64_t>(eval_windows(split, T).size());
  if (max_windows > 0) windows = std::min(windows, max_windows);
  PhaseProgress progress(label, windows, "windows");
  progress.update(0);
  EvalHooks hooks;
  hooks.should_stop = should_stop;
  hooks.on_batch = [&](int64_t done, int64_t) { progress.update(done); };
  return evaluate_split(engine, T, split, batch, max_windows, hooks);
}

std::string describe_coverage(const EvalResult& r, const std::string& bound_flag) {
  std::string text = message("over ", r.tokens, " tokens");
  if (r.windows < r.split_windows)
    text += message(" (", r.windows, " of ", r.split_windows, " windows; ", bound_flag, " 0 for all)");
  return text + " (" + format_duration(r.seconds) + ")";
}

}  // namespace spt
