#include "train/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/progress.h"

namespace spt {

namespace {

// The windows [begin, end) this rank scores, and how many batches every rank loops over
// (the same count on every rank, so that their per-batch stop checks pair up).
struct EvalShare {
  size_t begin = 0, end = 0;
  int64_t batches = 0;
};

EvalShare eval_share(size_t windows, int batch, const dist::Communicator* ranks) {
  const int world = ranks != nullptr ? ranks->world() : 1, rank = ranks != nullptr ? ranks->rank() : 0;
  const size_t per_rank = (windows + world - 1) / world;
  EvalShare share;
  share.begin = std::min(windows, per_rank * rank);
  share.end = std::min(windows, share.begin + per_rank);
  share.batches = static_cast<int64_t>((per_rank + batch - 1) / batch);
  return share;
}

// True on every rank when should_stop() is true on any.
bool agreed_stop(const EvalHooks& hooks) {
  const bool stop = hooks.should_stop && hooks.should_stop();
  if (hooks.ranks == nullptr || hooks.ranks->world() == 1) return stop;
  return dist::all_sum(*hooks.ranks, stop ? 1.0 : 0.0) > 0;
}

}  // namespace

EvalResult evaluate_split(Model& model, const TokenSplit& split, int batch, int64_t max_windows,
                          const EvalHooks& hooks) {
  const std::unique_ptr<Engine> engine = make_engine(EngineOptions{"cpu", "", false}, model, nullptr);
  return evaluate_split(*engine, model.config().ctx, split, batch, max_windows, hooks);
}

// Every window's loss sum goes to its own slot, and the slots (summed over the ranks, each
// filled by one) are added in window order: the result does not depend on the rank count.
EvalResult evaluate_split(Engine& engine, int64_t T, const TokenSplit& split, int batch, int64_t max_windows,
                          const EvalHooks& hooks) {
  SPT_CHECK(batch >= 1, "evaluation batch ", batch, " must be at least 1 (--batch)");
  const auto start = std::chrono::steady_clock::now();
  std::vector<EvalWindow> windows = eval_windows(split, T);
  EvalResult result;
  result.split_windows = static_cast<int64_t>(windows.size());
  if (max_windows > 0 && static_cast<int64_t>(windows.size()) > max_windows) windows.resize(max_windows);
  const EvalShare share = eval_share(windows.size(), batch, hooks.ranks);
  std::vector<double> window_nats(windows.size() + 2, 0.0);  // (windows) then tokens, windows done
  std::vector<uint8_t> tokens;  // (batch, T)
  std::vector<float> losses;    // (batch, T)
  size_t first = share.begin;
  for (int64_t b = 0; b < share.batches; ++b, first = std::min(share.end, first + batch)) {
    if (agreed_stop(hooks)) {
      result.interrupted = true;
      break;
    }
    const int n = static_cast<int>(std::min<size_t>(batch, share.end - first));
    if (n == 0) continue;
    tokens.resize(static_cast<size_t>(n) * T);
    losses.resize(static_cast<size_t>(n) * T);
    for (int w = 0; w < n; ++w) {
      const uint8_t* src = split.data() + windows[first + w].start;
      std::copy(src, src + T, tokens.begin() + static_cast<int64_t>(w) * T);
    }
    engine.evaluate(tokens.data(), n, losses.data());
    for (int w = 0; w < n; ++w) {
      double nats = 0.0;
      for (int64_t t = windows[first + w].score_from; t < T; ++t) nats += losses[static_cast<size_t>(w) * T + t];
      window_nats[first + w] = nats;
      window_nats[windows.size()] += static_cast<double>(T - windows[first + w].score_from);
    }
    window_nats[windows.size() + 1] += n;
    if (hooks.on_batch) hooks.on_batch(static_cast<int64_t>(first - share.begin) + n, static_cast<int64_t>(windows.size()));
  }
  if (hooks.ranks != nullptr && hooks.ranks->world() > 1)
    hooks.ranks->all_reduce_sum_host(window_nats.data(), static_cast<int64_t>(window_nats.size()));
  double nats = 0.0;
  for (size_t w = 0; w < windows.size(); ++w) nats += window_nats[w];
  result.tokens = static_cast<int64_t>(window_nats[windows.size()]);
  result.windows = static_cast<int64_t>(window_nats[windows.size() + 1]);
  result.skipped_tokens = short_clip_tokens(split, T);
  result.nats = result.tokens > 0 ? nats / static_cast<double>(result.tokens) : 0.0;
  result.bits_per_dim = result.nats / std::log(2.0);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

EvalResult evaluate_with_progress(const std::string& label, Engine& engine, int64_t T, const TokenSplit& split,
                                  int batch, int64_t max_windows, const std::function<bool()>& should_stop,
                                  dist::Communicator* ranks) {
  int64_t windows = static_cast<int64_t>(eval_windows(split, T).size());
  if (max_windows > 0) windows = std::min(windows, max_windows);
  PhaseProgress progress(label, windows, "windows");
  progress.update(0);
  EvalHooks hooks;
  hooks.should_stop = should_stop;
  hooks.ranks = ranks;
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
