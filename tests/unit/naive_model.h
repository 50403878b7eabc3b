// A separate, naive implementation of docs/MODEL.md in double precision (loss only),
// written for tests: plain loops over every (i, j) with the brute-force mask.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "brute_pattern.h"
#include "model/config.h"

namespace spt::naive {

using Weights = std::map<std::string, std::vector<double>>;
using Matrix = std::vector<std::vector<double>>;  // (T, width)

inline PatternSpec spec_of(const ModelConfig& c) {
  return {parse_pattern_kind(c.pattern), c.stride, c.summary, c.summary_blocks, parse_combine_mode(c.mode), c.heads};
}

inline Matrix layernorm(const Matrix& x, const std::vector<double>& g, const std::vector<double>& b) {
  Matrix y = x;
  for (auto& row : y) {
    double mean = 0, var = 0;
    for (double v : row) mean += v;
    mean /= row.size();
    for (double v : row) var += (v - mean) * (v - mean);
    var /= row.size();
    const double rstd = 1.0 / std::sqrt(var + 1e-5);
    for (size_t d = 0; d < row.size(); ++d) row[d] = (row[d] - mean) * rstd * g[d] + b[d];
  }
  return y;
}

// y = x W^T + b with W (out, in) row-major.
inline Matrix linear(const Matrix& x, const std::vector<double>& W, const std::vector<double>& b, size_t out) {
  Matrix y(x.size(), std::vector<double>(out));
  const size_t in = x[0].size();
  for (size_t t = 0; t < x.size(); ++t)
    for (size_t o = 0; o < out; ++o) {
      double s = b[o];
      for (size_t i = 0; i < in; ++i) s += W[o * in + i] * x[t][i];
      y[t][o] = s;
    }
  return y;
}

// Mean loss in nats of one sequence.
inline double sequence_loss(const ModelConfig& c, const Weights& w, const std::vector<uint8_t>& x) {
  const size_t T = x.size(), C = c.width, H = c.heads, Dk = c.qk_dim(), D = c.head_dim(), F = c.ff_width();
  const PatternSpec spec = spec_of(c);
  Matrix h(T, std::vector<double>(C, 0.0));
  for (size_t t = 0; t < T; ++t) {
    for (size_t d = 0; d < C; ++d) h[t][d] = t > 0 ? w.at("tok_emb.weight")[x[t - 1] * C + d] : 0.0;
    size_t inner = 1;
    for (int k = static_cast<int>(c.pos_sizes.size()) - 1; k >= 0; --k) {
      const size_t coord = (t / inner) % c.pos_sizes[k];
      inner *= c.pos_sizes[k];
      const auto& table = w.at("pos_emb." + std::to_string(k) + ".weight");
      for (size_t d = 0; d < C; ++d) h[t][d] += table[coord * C + d];
    }
  }
  for (int r = 0; r < c.layers; ++r) {
    const std::string p = "blocks." + std::to_string(r) + ".";
    const Matrix a = layernorm(h, w.at(p + "ln1.weight"), w.at(p + "ln1.bias"));
    const Matrix qkv = linear(a, w.at(p + "attn.qkv.weight"), w.at(p + "attn.qkv.bias"), 2 * H * Dk + C);
    Matrix o(T, std::vector<double>(C, 0.0));
    for (size_t head = 0; head < H; ++head)
      for (size_t i = 0; i < T; ++i) {
        std::vector<double> s(T, -INFINITY);
        double mx = -INFINITY;
        for (size_t j = 0; j <= i; ++j) {
          if (!brute_allows(spec, r, static_cast<int>(head), i, j)) continue;
          double dot = 0;
          for (size_t d = 0; d < Dk; ++d) dot += qkv[i][head * Dk + d] * qkv[j][H * Dk + head * Dk + d];
          s[j] = dot / std::sqrt(static_cast<double>(Dk));
          mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue;
        double z = 0;
        for (size_t j = 0; j <= i; ++j) z += std::exp(s[j] - mx);
        for (size_t j = 0; j <= i; ++j)
          for (size_t d = 0; d < D; ++d) o[i][head * D + d] += std::exp(s[j] - mx) / z * qkv[j][2 * H * Dk + head * D + d];
      }
    const Matrix y1 = linear(o, w.at(p + "attn.proj.weight"), w.at(p + "attn.proj.bias"), C);
    for (size_t t = 0; t < T; ++t)
      for (size_t d = 0; d < C; ++d) h[t][d] += y1[t][d];
    const Matrix m = layernorm(h, w.at(p + "ln2.weight"), w.at(p + "ln2.bias"));
    Matrix f = linear(m, w.at(p + "mlp.fc1.weight"), w.at(p + "mlp.fc1.bias"), F);
    for (auto& row : f)
      for (double& v : row) v = v / (1.0 + std::exp(-1.702 * v));
    const Matrix y2 = linear(f, w.at(p + "mlp.fc2.weight"), w.at(p + "mlp.fc2.bias"), C);
    for (size_t t = 0; t < T; ++t)
      for (size_t d = 0; d < C; ++d) h[t][d] += y2[t][d];
  }
  const Matrix logits = linear(layernorm(h, w.at("ln_f.weight"), w.at("ln_f.bias")), w.at("head.weight"),
                               w.at("head.bias"), kVocab);
  double loss = 0;
  for (size_t t = 0; t < T; ++t) {
    double mx = -INFINITY, z = 0;
    for (double v : logits[t]) mx = std::max(mx, v);
    for (double v : logits[t]) z += std::exp(v - mx);
    loss += mx + std::log(z) - logits[t][x[t]];
  }
  return loss / T;
}

}  // namespace spt::naive
