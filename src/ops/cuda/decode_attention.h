// Attention of one new position per sequence over a key/value cache (sampling): the query
// row of position t of each sequence attends, head by head, to the cached keys 0..t that
// the head's mask allows, with scores q.k / sqrt(Dk) and the softmax in fp32 (as the
// paper's released code computes them when sampling). The CPU version is part of
// KvDecoder (src/model/sampler.cpp).
#pragma once

#include <cstdint>

#include "ops/cuda/attention_plan.h"

namespace spt::cuda {

struct DecodeShape {
  int S = 1;              // sequences
  int H = 1;              // heads
  int Dk = 64;            // query/key head dim
  int Dv = 64;            // value/output head dim
  int64_t t = 0;          // the position being decoded; keys 0..t are in the cache
  int64_t q_stride = 0;   // elements between the query rows of two sequences
};

// plan: the layer's device plan (head masks and key-block lists) for the cache length T.
// q: (S, q_stride) fp32, head h at column h * Dk; keys: (S, T, H * Dk) fp32;
// values: (S, T, H * Dv) fp32; out: (S, H * Dv) fp32 overwritten (zero for a head whose
// query at t allows no key). Dk, Dv <= 128. Asynchronous on `stream`; never builds a
// buffer of size T.
void decode_attention(const DeviceAttentionPlan& plan, const DecodeShape& shape, const float* q, const float* keys,
                      const float* values, float* out, CUstream_st* stream = nullptr);

}  // namespace spt::cuda
