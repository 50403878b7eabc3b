// Token + factorized position embedding on the device.
// The backward pass has one gradient row per token (V = 256) and per position table
// row. Without atomics, a thread block owns one gradient row, 256 columns and one split
// of the B*T positions: it marks the positions of its split that feed its row (ballot
// over 256 positions at a time), adds their dh rows in increasing position order in
// fp64 and writes the split's sum to a scratch buffer; a second kernel adds the splits
// in order. The split size depends on B*T only, so the bits do not depend on the device.
#include "core/vocab.h"
#include "ops/cuda/op_common.cuh"
#include "ops/embedding.h"

namespace spt::cuda {
namespace {

constexpr int kRowsPerForwardBlock = 8;   // blockDim (32, 8): a warp per position
constexpr int64_t kMaxSplits = 16;        // bounds the scratch to (16, G, C) fp64
constexpr int64_t kMinSplitRows = 4096;
constexpr int kGatherDepth = 8;           // dh loads in flight per thread

// The factorization as kernels see it: coordinate k of position t is
// (t / inner[k]) % size[k].
struct PositionIndex {
  int count = 0;
  int size[kMaxPositionTables] = {};
  int64_t inner[kMaxPositionTables] = {};
  float* table[kMaxPositionTables] = {};  // (size[k], C)
  int first_row[kMaxPositionTables] = {};  // gradient row of table k's row 0 (after the V token rows)
  int gradient_rows = 0;                   // V + sum of size[k]
};

PositionIndex make_index(const PositionTables& pos) {
  PositionIndex index;
  index.count = pos.count;
  int64_t inner = 1;
  for (int k = pos.count - 1; k >= 0; --k) {
    index.size[k] = pos.size[k];
    index.inner[k] = inner;
    index.table[k] = pos.table[k];
    inner *= pos.size[k];
  }
  int row = kVocab;
  for (int k = 0; k < pos.count; ++k) {
    index.first_row[k] = row;
    row += pos.size[k];
  }
  index.gradient_rows = row;
  return index;
}

// hr (C) = (tok ? tok (C) : 0) + the rows of position t of every table, by one warp.
// Same order of additions as the CPU.
__device__ void embed_row(const float* __restrict__ tok, int64_t t, int C, const PositionIndex& pos,
                          float* __restrict__ hr) {
  const float* pos_rows[kMaxPositionTables] = {};
#pragma unroll
  for (int k = 0; k < kMaxPositionTables; ++k)
    if (k < pos.count) pos_rows[k] = pos.table[k] + ((t / pos.inner[k]) % pos.size[k]) * C;
  for (int c = threadIdx.x; c < C; c += ops::kWarpSize) {
    float value = tok != nullptr ? tok[c] : 0.0f;
#pragma unroll
    for (int k = 0; k < kMaxPositionTables; ++k)
      if (k < pos.count) value += pos_rows[k][c];
    hr[c] = value;
  }
}

// tokens: (B, T); tok_emb: (V, C); h: (rows = B*T, C).
__global__ void embedding_forward_kernel(const uint8_t* __restrict__ tokens, int64_t rows, int64_t T, int C,
                                         const float* __restrict__ tok_emb, PositionIndex pos,
                                         float* __restrict__ h) {
  const int64_t row = int64_t{blockIdx.x} * kRowsPerForwardBlock + threadIdx.y;
  if (row >= rows) return;
  const int64_t t = row % T;
  embed_row(t > 0 ? tok_emb + int64_t{tokens[row - 1]} * C : nullptr, t, C, pos, h + row * C);
}

// previous: (S) tokens of position t - 1; h: (S, C) for position t of every sequence.
__global__ void embedding_position_kernel(const uint8_t* __restrict__ previous, int S, int64_t t, int C,
                                          const float* __restrict__ tok_emb, PositionIndex pos,
                                          float* __restrict__ h) {
  const int64_t row = int64_t{blockIdx.x} * kRowsPerForwardBlock + threadIdx.y;
  if (row >= S) return;
  embed_row(t > 0 ? tok_emb + int64_t{previous[row]} * C : nullptr, t, C, pos, h + row * C);
}

// partial: (splits, G, C). Block (gradient row g = blockIdx.x, column tile blockIdx.y,
// split blockIdx.z) sums dh over the positions of its split that feed row g.
__global__ void embedding_backward_partial_kernel(const uint8_t* __restrict__ tokens, int64_t rows, int64_t T, int C,
                                                  const float* __restrict__ dh, PositionIndex pos,
                                                  int64_t split_rows, double* __restrict__ partial) {
  constexpr int kWarps = ops::kBlockThreads / ops::kWarpSize;
  __shared__ uint32_t marks[kWarps];  // bit j of word w: position base + 32 w + j feeds row g
  const int g = blockIdx.x;
  const int c = blockIdx.y * ops::kBlockThreads + threadIdx.x;
  const bool active = c < C;
  // Which rule selects the positions of row g: a token, or row p of position table k
  // (loops over kMaxPositionTables with constant indices keep pos out of local memory).
  bool is_token = true;
  int table_row = g, table_size = 1;
  int64_t table_inner = 1;
#pragma unroll
  for (int k = 0; k < kMaxPositionTables; ++k)
    if (k < pos.count && g >= pos.first_row[k]) {
      is_token = false;
      table_row = g - pos.first_row[k];
      table_size = pos.size[k];
      table_inner = pos.inner[k];
    }
  const int64_t split_begin = int64_t{blockIdx.z} * split_rows;
  const int64_t split_end = split_begin + split_rows < rows ? split_begin + split_rows : rows;
  double acc = 0.0;
  for (int64_t base = split_begin; base < split_end; base += ops::kBlockThreads) {
    const int64_t row = base + threadIdx.x;
    bool feeds = false;
    if (row < split_end) {
      const int64_t t = row % T;
      if (is_token)
        feeds = t > 0 && tokens[row - 1] == table_row;
      else
        feeds = (t / table_inner) % table_size == table_row;
    }
    const uint32_t ballot = __ballot_sync(0xffffffffu, feeds);
    if (threadIdx.x % ops::kWarpSize == 0) marks[threadIdx.x / ops::kWarpSize] = ballot;
    __syncthreads();
    // Walk the marked positions in increasing order, kGatherDepth loads at a time.
    int word = 0;
    uint32_t bits = marks[0];
    while (true) {
      int64_t gathered[kGatherDepth] = {};
      int count = 0;
#pragma unroll
      for (int i = 0; i < kGatherDepth; ++i) {
        while (bits == 0 && word + 1 < kWarps) bits = marks[++word];
        if (bits != 0) {
          gathered[i] = base + word * ops::kWarpSize + (__ffs(bits) - 1);
          bits &= bits - 1;
          count = i + 1;
        }
      }
      if (count == 0) break;
      if (active) {
        float values[kGatherDepth];
#pragma unroll
        for (int i = 0; i < kGatherDepth; ++i) values[i] = i < count ? dh[gathered[i] * C + c] : 0.0f;
#pragma unroll
        for (int i = 0; i < kGatherDepth; ++i)
          if (i < count) acc += values[i];
      }
    }
    __syncthreads();  // marks are rewritten by the next round
  }
  if (active) partial[(int64_t{blockIdx.z} * pos.gradient_rows + g) * C + c] = acc;
}

// Adds the split sums of partial (splits, G, C) in order into dtok_emb (V, C) and the
// position tables of pos.
__global__ void embedding_backward_finish_kernel(const double* __restrict__ partial, int64_t splits, int C,
                                                 PositionIndex pos, float* __restrict__ dtok_emb) {
  const int64_t gradient_elements = int64_t{pos.gradient_rows} * C;
  for (int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; e < gradient_elements;
       e += int64_t{gridDim.x} * blockDim.x) {
    double sum = 0.0;
    for (int64_t s = 0; s < splits; ++s) sum += partial[s * gradient_elements + e];
    const int g = static_cast<int>(e / C);
    const int c = static_cast<int>(e % C);
    float* out = dtok_emb + e;
#pragma unroll
    for (int k = 0; k < kMaxPositionTables; ++k)
      if (k < pos.count && g >= pos.first_row[k]) out = pos.table[k] + int64_t{g - pos.first_row[k]} * C + c;
    *out = static_cast<float>(*out + sum);
  }
}

void check_dims(const char* op, const uint8_t* tokens, int B, int64_t T, int C, const float* tok, const float* h,
                const PositionTables& pos) {
  SPT_CHECK(B >= 1 && T >= 1 && C >= 1, op, ": dims B=", B, " T=", T, " C=", C, " must be positive");
  SPT_CHECK(tokens != nullptr && tok != nullptr && h != nullptr, op,
            ": null device pointer among tokens, the token table and the activations (B=", B, ", T=", T, ")");
  SPT_CHECK(pos.count >= 0 && pos.count <= kMaxPositionTables, op, ": ", pos.count,
            " position tables; between 0 and ", kMaxPositionTables, " are supported");
  for (int k = 0; k < pos.count; ++k) {
    SPT_CHECK(pos.size[k] >= 1, op, ": position table ", k, " has size ", pos.size[k], "; sizes must be positive");
    SPT_CHECK(pos.table[k] != nullptr, op, ": position table ", k, " is a null device pointer");
  }
}

}  // namespace

void embedding_forward(const uint8_t* tokens, int B, int64_t T, int C, const float* tok_emb,
                       const PositionTables& pos, float* h, CUstream_st* stream) {
  check_dims("embedding_forward", tokens, B, T, C, tok_emb, h, pos);
  const int64_t rows = int64_t{B} * T;
  SPT_CHECK(rows / kRowsPerForwardBlock < (int64_t{1} << 31), "embedding_forward: B*T=", rows,
            " positions exceed the grid limit");
  const unsigned blocks = static_cast<unsigned>((rows + kRowsPerForwardBlock - 1) / kRowsPerForwardBlock);
  embedding_forward_kernel<<<blocks, dim3(ops::kWarpSize, kRowsPerForwardBlock), 0, stream>>>(
      tokens, rows, T, C, tok_emb, make_index(pos), h);
  SPT_CUDA_CHECK_LAUNCH();
}

void embedding_forward_position(const uint8_t* previous, int S, int64_t t, int C, const float* tok_emb,
                                const PositionTables& pos, float* h, CUstream_st* stream) {
  check_dims("embedding_forward_position", previous, S, t + 1, C, tok_emb, h, pos);
  const unsigned blocks = static_cast<unsigned>((S + kRowsPerForwardBlock - 1) / kRowsPerForwardBlock);
  embedding_position_kernel<<<blocks, dim3(ops::kWarpSize, kRowsPerForwardBlock), 0, stream>>>(
      previous, S, t, C, tok_emb, make_index(pos), h);
  SPT_CUDA_CHECK_LAUNCH();
}

void embedding_backward(const uint8_t* tokens, int B, int64_t T, int C, const float* dh, float* dtok_emb,
                        const PositionTables& dpos, CUstream_st* stream) {
  check_dims("embedding_backward", tokens, B, T, C, dtok_emb, dh, dpos);
  const int64_t rows = int64_t{B} * T;
  const PositionIndex index = make_index(dpos);
  // Splits of at least kMinSplitRows positions (a multiple of the block's 256), at most kMaxSplits.
  int64_t split_rows = (rows + kMaxSplits - 1) / kMaxSplits;
  if (split_rows < kMinSplitRows) split_rows = kMinSplitRows;
  split_rows = (split_rows + ops::kBlockThreads - 1) / ops::kBlockThreads * ops::kBlockThreads;
  const int64_t splits = (rows + split_rows - 1) / split_rows;
  const int64_t column_tiles = (C + ops::kBlockThreads - 1) / ops::kBlockThreads;
  SPT_CHECK(column_tiles < 65536, "embedding_backward: width C=", C, " exceeds the grid limit");
  double* partial = nullptr;  // (splits, G, C)
  const size_t partial_count = static_cast<size_t>(splits) * index.gradient_rows * C;
  SPT_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partial), partial_count * sizeof(double), stream));
  const dim3 grid(static_cast<unsigned>(index.gradient_rows), static_cast<unsigned>(column_tiles),
                  static_cast<unsigned>(splits));
  embedding_backward_partial_kernel<<<grid, ops::kBlockThreads, 0, stream>>>(tokens, rows, T, C, dh, index,
                                                                             split_rows, partial);
  SPT_CUDA_CHECK_LAUNCH();
  embedding_backward_finish_kernel<<<ops::grid_for(int64_t{index.gradient_rows} * C), ops::kBlockThreads, 0,
                                     stream>>>(partial, splits, C, index, dtok_emb);
  SPT_CUDA_CHECK_LAUNCH();
  SPT_CUDA_CHECK(cudaFreeAsync(partial, stream));
}

}  // namespace spt::cuda
