#include "model/model_size.h"

#include <cmath>
#include <cstdio>
#include <initializer_list>

#include "core/error.h"

namespace spt {
namespace {

// ParamTable starts every tensor on a 16-float boundary, so every tensor but the last
// occupies its size rounded up to 16.
double aligned(double size) { return std::ceil(size / 16.0) * 16.0; }

double aligned_sum(std::initializer_list<double> sizes) {
  double total = 0;
  for (double size : sizes) total += aligned(size);
  return total;
}

}  // namespace

double parameter_count(const ModelConfig& c) {
  const double C = c.width, F = static_cast<double>(c.ff_ratio) * c.width, V = kVocab, L = c.layers;
  const double Fw = std::floor(F + 0.5);  // ModelConfig::ff_width, without its int cast
  const double QKV = 2.0 * (c.half_qk ? c.width / c.heads / 2 : c.width / c.heads) * c.heads + C;
  double total = aligned(V * C);  // tok_emb
  for (int size : c.pos_sizes) total += aligned(double{1} * size * C);
  total += L * aligned_sum({C, C, QKV * C, QKV, C * C, C, C, C, Fw * C, Fw, C * Fw, C});
  total += aligned_sum({C, C, V * C});  // ln_f, head.weight
  return total + V;                     // head.bias, the last tensor: not padded
}

HostMemoryPlan host_memory_plan(const ModelConfig& c, int B, bool training, bool recompute) {
  const double P = parameter_count(c);
  const double N = double{1} * B * c.ctx, C = c.width, V = kVocab, L = c.layers, H = c.heads;
  const double F = std::floor(c.ff_ratio * c.width + 0.5);
  const double QKV = 2.0 * (c.half_qk ? c.width / c.heads / 2 : c.width / c.heads) * c.heads + C;
  const double per_layer = N * (4 * C + 4 + QKV + H + 2 * F);  // LayerActivations
  double floats = (training ? L + 1 : 2) * N * C;             // residual stream slots
  floats += (training && !recompute ? L : 1) * per_layer;
  floats += 2 * N * C + 3 * N + N * V;  // branch, ln_f and its statistics, logits, losses
  if (training) floats += 4 * N * C + N * QKV + N * F;  // backward scratch
  HostMemoryPlan plan;
  plan.weights = 4 * P;
  plan.gradients = 4 * P;
  plan.optimizer = training ? 8 * P : 0;
  plan.activations = 4 * floats;
  return plan;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 6) {
    bytes /= 1024;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return text;
}

std::string HostMemoryPlan::describe() const {
  return message("weights ", format_bytes(weights), ", gradients ", format_bytes(gradients), ", optimizer ",
                 format_bytes(optimizer), ", activations ", format_bytes(activations), ", total ",
                 format_bytes(total()));
}

void check_memory_plan(const HostMemoryPlan& plan, double limit_bytes, const std::string& what) {
  SPT_CHECK(plan.total() <= limit_bytes, what, " needs ", format_bytes(plan.total()), " of host memory (",
            plan.describe(), "), more than the ", format_bytes(limit_bytes),
            " of memory spt may use here: lower --layers, --width, --ctx or --batch");
}

}  // namespace spt
