// The cuBLASLt context (handle, workspace, chosen algorithms, scratch) and the one
// product that every linear layer runs through it.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <compare>
#include <cstdint>
#include <map>
#include <string>

#include "core/cublas_check.h"
#include "core/cuda_check.h"
#include "ops/cuda/blas_matmul.h"
#include "ops/cuda/op_common.cuh"
#include "ops/linear.h"

namespace spt::cuda {
namespace detail {

// What the heuristic's answer depends on: the problem's shape, types and transposes, and
// the alignment of every pointer (cuBLASLt kernels may assume up to 256 bytes).
struct MatmulKey {
  int64_t m, n, k, lda, ldb, ldd;
  bool transpose_a, transpose_b, reads_d, has_bias;
  DType ab_type, d_type;
  uint32_t align_a, align_b, align_d, align_bias;
  auto operator<=>(const MatmulKey&) const = default;
};

struct MatmulChoice {
  cublasLtMatmulAlgo_t algo;
  DType bias_type;  // fp32, or d_type where cuBLASLt cannot add an fp32 bias to this output
};

}  // namespace detail

struct BlasContext::State {
  std::map<detail::MatmulKey, detail::MatmulChoice> choices;
  void* scratch = nullptr;  // (scratch_bytes) bytes
  size_t scratch_bytes = 0;
};

namespace {

// cuBLASLt's recommended workspace for Hopper; it also covers the split-K partial sums.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

// The largest power of two, at most 256, that divides the address.
uint32_t alignment_of(const void* pointer) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
  if (address == 0) return 256;
  return static_cast<uint32_t>(std::min<uintptr_t>(256, address & (~address + 1)));
}

// staged (n) = bias (n) converted to T.
template <typename T>
__global__ void stage_bias_kernel(const float* bias, int64_t n, T* staged) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) ops::store_f32(staged + i, bias[i]);
}

void stage_bias(const float* bias, int64_t n, DType type, void* staged, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  switch (type) {
    case DType::f32: stage_bias_kernel<<<blocks, kThreads, 0, stream>>>(bias, n, static_cast<float*>(staged)); break;
    case DType::bf16:
      stage_bias_kernel<<<blocks, kThreads, 0, stream>>>(bias, n, static_cast<__nv_bfloat16*>(staged));
      break;
    case DType::f16: stage_bias_kernel<<<blocks, kThreads, 0, stream>>>(bias, n, static_cast<__half*>(staged)); break;
  }
  SPT_CUDA_CHECK(cudaGetLastError());
}

// The operation and layout descriptors of one product, destroyed with this object.
class Descriptors {
 public:
  Descriptors(const detail::MatmulProblem& p, DType bias_type, const void* bias) {
    SPT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&operation, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transpose_a = p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t transpose_b = p.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    SPT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSA, &transpose_a, sizeof(transpose_a)));
    SPT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSB, &transpose_b, sizeof(transpose_b)));
    if (bias != nullptr) {
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      const int32_t type = cuda_type(bias_type);
      SPT_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
      SPT_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &type, sizeof(type)));
      SPT_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    }
    const auto rows_a = static_cast<uint64_t>(p.transpose_a ? p.k : p.m);
    const auto cols_a = static_cast<uint64_t>(p.transpose_a ? p.m : p.k);
    const auto rows_b = static_cast<uint64_t>(p.transpose_b ? p.n : p.k);
    const auto cols_b = static_cast<uint64_t>(p.transpose_b ? p.k : p.n);
    SPT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout_a, cuda_type(p.ab_type), rows_a, cols_a, p.lda));
    SPT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout_b, cuda_type(p.ab_type), rows_b, cols_b, p.ldb));
    SPT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout_d, cuda_type(p.d_type), static_cast<uint64_t>(p.m),
                                                static_cast<uint64_t>(p.n), p.ldd));
  }
  ~Descriptors() {
    if (layout_d != nullptr) cublasLtMatrixLayoutDestroy(layout_d);
    if (layout_b != nullptr) cublasLtMatrixLayoutDestroy(layout_b);
    if (layout_a != nullptr) cublasLtMatrixLayoutDestroy(layout_a);
    if (operation != nullptr) cublasLtMatmulDescDestroy(operation);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;

  cublasLtMatmulDesc_t operation = nullptr;
  cublasLtMatrixLayout_t layout_a = nullptr;
  cublasLtMatrixLayout_t layout_b = nullptr;
  cublasLtMatrixLayout_t layout_d = nullptr;  // also C: the product accumulates into D in place
};

class Preference {
 public:
  explicit Preference(const detail::MatmulKey& key) {
    SPT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
    const uint64_t workspace = kWorkspaceBytes;
    // Split-K partial sums stay fp32 in the workspace and are reduced in a fixed order;
    // the in-place and output-type schemes would round partial sums to a 16-bit output.
    const uint32_t reductions = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace));
    set(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reductions, sizeof(reductions));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.align_a, sizeof(key.align_a));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.align_b, sizeof(key.align_b));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.align_d, sizeof(key.align_d));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.align_d, sizeof(key.align_d));
  }
  ~Preference() {
    if (preference != nullptr) cublasLtMatmulPreferenceDestroy(preference);
  }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;

  cublasLtMatmulPreference_t preference = nullptr;

 private:
  void set(cublasLtMatmulPreferenceAttributes_t attribute, const void* value, size_t bytes) {
    SPT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, value, bytes));
  }
};

// The heuristic's best algorithm for the product, or false when it has none.
bool best_algorithm(cublasLtHandle_t handle, const Descriptors& d, const Preference& preference,
                    cublasLtMatmulAlgo_t* algo, const std::string& what) {
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, d.operation, d.layout_a, d.layout_b, d.layout_d,
                                                               d.layout_d, preference.preference, 1, &result, &count);
  // Some type combinations (an fp32 bias with a 16-bit output) are refused as invalid rather
  // than unsupported; either way the caller falls back or reports that no algorithm exists.
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_INVALID_VALUE) return false;
  SPT_CHECK(status == CUBLAS_STATUS_SUCCESS, what, ": cublasLtMatmulAlgoGetHeuristic failed: ",
            cublasLtGetStatusName(status), " (", cublasLtGetStatusString(status), ")");
  if (count < 1 || result.state != CUBLAS_STATUS_SUCCESS) return false;
  *algo = result.algo;
  return true;
}

}  // namespace

BlasContext::BlasContext(CUstream_st* stream) : stream_(stream), workspace_bytes_(kWorkspaceBytes) {
  cublasLtHandle_t handle = nullptr;
  SPT_CUBLAS_CHECK(cublasLtCreate(&handle));
  handle_ = handle;
  const cudaError_t status = cudaMalloc(&workspace_, workspace_bytes_);
  if (status != cudaSuccess) {
    cublasLtDestroy(handle);
    SPT_CUDA_CHECK(status);
  }
  state_ = new State;
}

BlasContext::~BlasContext() {
  // Work queued on the stream may still read the workspace or the scratch.
  cudaStreamSynchronize(stream_);
  if (state_ != nullptr && state_->scratch != nullptr) cudaFree(state_->scratch);
  delete state_;
  cudaFree(workspace_);
  cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

namespace detail {

void* scratch(BlasContext& blas, size_t bytes) {
  BlasContext::State& state = blas.state();
  if (bytes <= state.scratch_bytes) return state.scratch;
  const size_t grown = std::max({bytes, 2 * state.scratch_bytes, size_t{64} << 10});
  SPT_CUDA_CHECK(cudaStreamSynchronize(blas.stream()));
  if (state.scratch != nullptr) SPT_CUDA_CHECK(cudaFree(state.scratch));
  state.scratch = nullptr;
  state.scratch_bytes = 0;
  SPT_CUDA_CHECK(cudaMalloc(&state.scratch, grown));
  state.scratch_bytes = grown;
  return state.scratch;
}

void matmul(BlasContext& blas, const MatmulProblem& p, const std::string& what) {
  SPT_CHECK(p.m >= 1 && p.n >= 1 && p.k >= 1, what, ": empty product m=", p.m, " n=", p.n, " k=", p.k);
  SPT_CHECK(p.lda >= (p.transpose_a ? p.k : p.m) && p.ldb >= (p.transpose_b ? p.n : p.k) && p.ldd >= p.m, what,
            ": leading dimensions lda=", p.lda, " ldb=", p.ldb, " ldd=", p.ldd, " are shorter than the columns");
  SPT_CHECK(p.d_type == DType::f32 || p.d_type == p.ab_type, what, ": cuBLASLt writes ", dtype_name(p.ab_type),
            " products as fp32 or ", dtype_name(p.ab_type), ", not ", dtype_name(p.d_type));
  const bool has_bias = p.bias != nullptr;
  const MatmulKey key{p.m,           p.n,           p.k,
                      p.lda,         p.ldb,         p.ldd,
                      p.transpose_a, p.transpose_b, p.beta != 0.0f,
                      has_bias,      p.ab_type,     p.d_type,
                      alignment_of(p.a), alignment_of(p.b), alignment_of(p.d),
                      has_bias ? alignment_of(p.bias) : 0u};
  auto handle = static_cast<cublasLtHandle_t>(blas.handle());

  // A bias cuBLASLt may not read in place is staged (256-byte aligned) in the scratch: an
  // fp32 bias not 16-byte aligned, or a bias converted to the output type where the
  // epilogue cannot add an fp32 bias to that output.
  void* staged = nullptr;
  if (has_bias && (key.align_bias < 16 || p.d_type != DType::f32))
    staged = scratch(blas, static_cast<size_t>(p.m) * sizeof(float));
  auto bias_pointer = [&](DType bias_type) -> const void* {
    if (!has_bias) return nullptr;
    return bias_type == DType::f32 && key.align_bias >= 16 ? static_cast<const void*>(p.bias) : staged;
  };

  auto found = blas.state().choices.find(key);
  if (found == blas.state().choices.end()) {
    const Preference preference(key);
    MatmulChoice choice{};
    choice.bias_type = DType::f32;
    bool chosen = best_algorithm(handle, Descriptors(p, DType::f32, bias_pointer(DType::f32)), preference, &choice.algo,
                                  what);
    if (!chosen && has_bias && p.d_type != DType::f32) {
      choice.bias_type = p.d_type;
      chosen = best_algorithm(handle, Descriptors(p, p.d_type, bias_pointer(p.d_type)), preference, &choice.algo,
                              what);
    }
    SPT_CHECK(chosen, what, ": cuBLASLt has no algorithm for ", dtype_name(p.ab_type), " x ", dtype_name(p.ab_type),
              " -> ", dtype_name(p.d_type), has_bias ? " with a bias" : "", " (m=", p.m, " n=", p.n, " k=", p.k,
              ", pointer alignments ", key.align_a, "/", key.align_b, "/", key.align_d, " bytes)");
    found = blas.state().choices.emplace(key, choice).first;
  }
  const MatmulChoice& choice = found->second;
  const void* bias = bias_pointer(choice.bias_type);
  if (has_bias && bias == staged) stage_bias(p.bias, p.m, choice.bias_type, staged, blas.stream());

  const Descriptors descriptors(p, choice.bias_type, bias);
  const float alpha = 1.0f;
  const cublasStatus_t status =
      cublasLtMatmul(handle, descriptors.operation, &alpha, p.a, descriptors.layout_a, p.b, descriptors.layout_b,
                     &p.beta, p.d, descriptors.layout_d, p.d, descriptors.layout_d, &choice.algo, blas.workspace(),
                     blas.workspace_bytes(), blas.stream());
  SPT_CHECK(status == CUBLAS_STATUS_SUCCESS, what, ": cublasLtMatmul (m=", p.m, " n=", p.n, " k=", p.k,
            ") failed: ", cublasLtGetStatusName(status), " (", cublasLtGetStatusString(status), ")");
}

}  // namespace detail
}  // namespace spt::cuda
