// Element types of the CUDA backend's activations. Master weights, optimizer state,
// the residual stream, softmax/LayerNorm statistics and every accumulation are fp32
// whatever the activation type.
#pragma once

#include <cstddef>
#include <string>

#include "core/error.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so headers need no CUDA include

namespace spt::cuda {

enum class DType { f32, bf16, f16 };

inline size_t dtype_size(DType dtype) { return dtype == DType::f32 ? 4 : 2; }
inline const char* dtype_name(DType dtype) {
  return dtype == DType::f32 ? "fp32" : dtype == DType::bf16 ? "bf16" : "fp16";
}
// The inverse of dtype_name: the names --precision takes.
inline DType parse_dtype(const std::string& name) {
  if (name == "fp32") return DType::f32;
  if (name == "bf16") return DType::bf16;
  SPT_CHECK(name == "fp16", "unknown precision '", name, "': use fp32, bf16 or fp16 (--precision)");
  return DType::f16;
}

}  // namespace spt::cuda
