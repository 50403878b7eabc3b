// What the spt_torch ops share between their CPU and CUDA kernels: the op's arguments
// turned into spt's pattern and attention shape, and the checks that every tensor is one
// spt can read in place. Failed checks raise Python ValueError / TypeError naming the
// bad value and what works; spt::Error from spt's own validation becomes ValueError.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>
#include <torch/library.h>

#include "core/error.h"
#include "ops/attention.h"
#include "pattern/pattern.h"

namespace spt_torch {

// The pattern arguments of every op call, as in spt_torch.sparse_attention.
struct PatternArgs {
  std::string pattern;
  int64_t stride = 128;
  int64_t summary = 32;
  int64_t summary_blocks = 1;
  std::string mode;
  int64_t layer = 0;
};

// The pattern of `heads` heads; spt's own validation of the values, as ValueError.
spt::Pattern make_pattern(const PatternArgs& args, int64_t heads);

// Checks q, k, v (B, H, T, D) (see the layout note in op_args.cpp) and returns spt's
// shape with their row strides; out_stride is left packed (H * Dv).
spt::AttentionShape checked_shape(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Checks that `t` is (B, H, T, D) over packed (B, T, H, D) memory on q's device and dtype
// (out and dout of the backward); `name` is used in the message.
void check_packed(const at::Tensor& t, const at::Tensor& q, int64_t D, const char* name);

// The backward's own inputs: out and dout packed like the forward's output, lse (B, H, T)
// contiguous float32, all on q's device.
void check_backward_inputs(const at::Tensor& dout, const at::Tensor& out, const at::Tensor& lse, const at::Tensor& q,
                           const spt::AttentionShape& shape);

// A new (B, H, T, D) tensor over packed (B, T, H, D) memory: the op's output layout.
at::Tensor new_output(const at::Tensor& like, int64_t D);

// dq, dk, dv with the sizes and strides of q, k, v: the backward writes them in that layout.
std::tuple<at::Tensor, at::Tensor, at::Tensor> new_gradients(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v);

// Runs `body`, turning spt::Error into a ValueError that names the op.
template <typename Body>
void translate_errors(const char* op, Body&& body) {
  try {
    body();
  } catch (const spt::Error& e) {
    TORCH_CHECK_VALUE(false, op, ": ", e.what());
  }
}

}  // namespace spt_torch
