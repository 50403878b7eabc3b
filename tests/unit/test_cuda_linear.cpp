// CUDA linear layers (cuBLASLt) against the CPU op (spt::cpu::linear_forward/backward)
// on fresh random inputs, fp32, bf16 and fp16.
//
// Tolerances, per element. Every output is a sum of K products (K = in for y, out for dx,
// N for dweight) plus one addend (the bias, or the initial value accumulated onto). Both
// sides accumulate in fp32 in different orders; the rounding error of such a sum grows
// like u sqrt(K) ||t||_2 (u = 2^-24, t the terms, the addend counted as one more term);
// ||t||_2^2 is computed exactly as the same product of the squared inputs. The allowed
// fp32 difference is 8 u sqrt(K + 1) ||t||_2 + 2 u |want|: about 14 standard deviations
// of the difference between two recursive summations, while TF32 inputs (10-bit
// mantissas) would err by about 800 / sqrt(K) times that bound.
// bf16 and fp16: the CPU runs on the same inputs rounded to the type, so its fp32 result
// r differs from the GPU's only by the fp32 term before the GPU rounds once to the type;
// twice the error of rounding r to the type is allowed on top of the fp32 term. Where
// cuBLASLt's epilogue cannot add an fp32 bias to a 16-bit output, the bias is rounded to
// the output type first, so a forward with a 16-bit y also allows one rounding of |bias|.
// dbias: both sides sum in fp64 and round once to fp32 (one fp32 ulp allowed).
// Every output buffer is followed (and, with misaligned pointers, preceded) by NaN
// sentinels that must survive; outputs written with beta = 0 start as NaN, so reading
// them would show.
#include <gtest/gtest.h>

#ifdef SPT_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "ops/linear.h"
#include "cuda_test_util.h"

namespace spt {
namespace {

using cuda::DType;

using namespace testing_support;

// A device array of `count` elements of `dtype`, starting `offset` elements into its
// allocation (to test pointers aligned only to the element size), surrounded by sentinels.
class DeviceArray {
 public:
  DeviceArray(DType dtype, size_t count, size_t offset = 0)
      : dtype_(dtype), count_(count), offset_(offset), bytes_((offset + count + kGuard) * size()) {
    std::vector<unsigned char> raw((offset_ + count_ + kGuard) * size());
    for (size_t e = 0; e < offset_ + count_ + kGuard; ++e) encode_sentinel(raw.data() + e * size());
    bytes_.upload(raw.data(), raw.size());
  }
  size_t size() const { return cuda::dtype_size(dtype_); }
  void* data() { return bytes_.data() + offset_ * size(); }
  float* floats() { return reinterpret_cast<float*>(data()); }

  void upload(const std::vector<float>& values) {
    std::vector<unsigned char> raw(count_ * size());
    for (size_t e = 0; e < count_; ++e) encode(values[e], raw.data() + e * size());
    SPT_CUDA_CHECK(cudaMemcpy(data(), raw.data(), raw.size(), cudaMemcpyHostToDevice));
  }
  // The values, after checking that the sentinels around them survived.
  std::vector<float> download(const std::string& what, std::vector<unsigned char>* raw_values = nullptr) const {
    std::vector<unsigned char> raw((offset_ + count_ + kGuard) * size());
    bytes_.download(raw.data(), raw.size());
    size_t damaged = 0;
    for (size_t e = 0; e < offset_ + count_ + kGuard; ++e)
      if ((e < offset_ || e >= offset_ + count_) && !is_sentinel(raw.data() + e * size())) ++damaged;
    EXPECT_EQ(damaged, 0u) << what << ": " << damaged << " sentinel elements around the buffer were overwritten";
    std::vector<float> values(count_);
    for (size_t e = 0; e < count_; ++e) values[e] = decode(raw.data() + (offset_ + e) * size());
    if (raw_values != nullptr)
      raw_values->assign(raw.begin() + offset_ * size(), raw.begin() + (offset_ + count_) * size());
    return values;
  }

 private:
  void encode(float x, unsigned char* out) const {
    if (dtype_ == DType::f32) {
      std::memcpy(out, &x, 4);
      return;
    }
    const uint16_t bits = dtype_ == DType::bf16 ? bf16_bits(x) : f16_bits(x);
    std::memcpy(out, &bits, 2);
  }
  float decode(const unsigned char* in) const {
    if (dtype_ == DType::f32) {
      float x;
      std::memcpy(&x, in, 4);
      return x;
    }
    uint16_t bits;
    std::memcpy(&bits, in, 2);
    return dtype_ == DType::bf16 ? bf16_value(bits) : f16_value(bits);
  }
  void encode_sentinel(unsigned char* out) const {
    if (dtype_ == DType::f32) {
      std::memcpy(out, &kSentinelF32, 4);
      return;
    }
    const uint16_t bits = dtype_ == DType::bf16 ? kSentinelBF16 : kSentinelF16;
    std::memcpy(out, &bits, 2);
  }
  bool is_sentinel(const unsigned char* in) const {
    if (dtype_ == DType::f32) return std::memcmp(in, &kSentinelF32, 4) == 0;
    const uint16_t bits = dtype_ == DType::bf16 ? kSentinelBF16 : kSentinelF16;
    return std::memcmp(in, &bits, 2) == 0;
  }

  DType dtype_;
  size_t count_;
  size_t offset_;
  DeviceBuffer<unsigned char> bytes_;
};

struct LinearCase {
  int64_t N = 1;
  int in = 32;
  int out = 32;
  DType dtype = DType::f32;
  DType y_dtype = DType::f32;
  bool bias = true;
  bool accumulate_dx = false;
  bool with_dx = true;
  size_t misalign = 0;  // elements by which every pointer is offset from its allocation
};

std::string describe(const LinearCase& c) {
  return message("N ", c.N, ", in ", c.in, ", out ", c.out, ", ", cuda::dtype_name(c.dtype), " -> ",
                 cuda::dtype_name(c.y_dtype), c.bias ? ", bias" : "", c.accumulate_dx ? ", accumulate dx" : "",
                 c.with_dx ? "" : ", no dx", c.misalign ? ", misaligned pointers" : "");
}

// Normal values times `scale`, rounded to `dtype`, for stream `key`.
std::vector<float> random_values(size_t count, uint64_t key, double scale, DType dtype) {
  std::vector<float> values(count);
  parallel_for(static_cast<int64_t>(count), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      values[i] = round_to(dtype, static_cast<float>(scale * normal01(key, static_cast<uint64_t>(i))));
  }, 4096);
  return values;
}

std::vector<float> squares(const std::vector<float>& values) {
  std::vector<float> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = values[i] * values[i];
  return out;
}

struct Inputs {
  std::vector<float> x, weight, bias, dy, dx0, dweight0, dbias0;
};

Inputs make_inputs(const LinearCase& c, uint64_t seed) {
  const auto N = static_cast<size_t>(c.N), in = static_cast<size_t>(c.in), out = static_cast<size_t>(c.out);
  Inputs v;
  v.x = random_values(N * in, rng_key(seed, 1), 1.0, c.dtype);
  v.weight = random_values(out * in, rng_key(seed, 2), 1.0 / std::sqrt(c.in), c.dtype);
  v.bias = random_values(out, rng_key(seed, 3), 0.5, DType::f32);
  v.dy = random_values(N * out, rng_key(seed, 4), 1.0, c.dtype);
  v.dx0 = random_values(N * in, rng_key(seed, 5), 1.0, c.dtype);
  v.dweight0 = random_values(out * in, rng_key(seed, 6), std::sqrt(static_cast<double>(c.N)), DType::f32);
  v.dbias0 = random_values(out, rng_key(seed, 7), std::sqrt(static_cast<double>(c.N)), DType::f32);
  return v;
}

struct Outputs {
  std::vector<float> y, dx, dweight, dbias;
  std::vector<unsigned char> y_raw, dx_raw, dweight_raw, dbias_raw;
};

Outputs run_gpu(cuda::BlasContext& blas, const LinearCase& c, const Inputs& v) {
  const auto N = static_cast<size_t>(c.N), in = static_cast<size_t>(c.in), out = static_cast<size_t>(c.out);
  const size_t off = c.misalign;
  DeviceArray x(c.dtype, N * in, off), weight(c.dtype, out * in, off), bias(DType::f32, out, off);
  DeviceArray y(c.y_dtype, N * out, off), dy(c.dtype, N * out, off), dx(c.dtype, N * in, off);
  DeviceArray dweight(DType::f32, out * in, off), dbias(DType::f32, out, off);
  x.upload(v.x);
  weight.upload(v.weight);
  bias.upload(v.bias);
  dy.upload(v.dy);
  if (c.accumulate_dx) dx.upload(v.dx0);  // otherwise dx stays NaN: it must not be read
  dweight.upload(v.dweight0);
  dbias.upload(v.dbias0);

  cuda::linear_forward(blas, x.data(), weight.data(), c.bias ? bias.floats() : nullptr, c.N, c.in, c.out, c.dtype,
                       c.y_dtype, y.data());
  cuda::linear_backward(blas, x.data(), weight.data(), dy.data(), c.N, c.in, c.out, c.dtype,
                        c.with_dx ? dx.data() : nullptr, c.accumulate_dx, dweight.floats(),
                        c.bias ? dbias.floats() : nullptr);
  SPT_CUDA_CHECK(cudaStreamSynchronize(blas.stream()));
  SPT_CUDA_CHECK(cudaDeviceSynchronize());

  Outputs o;
  const std::string context = describe(c);
  o.y = y.download("y (" + context + ")", &o.y_raw);
  o.dx = dx.download("dx (" + context + ")", &o.dx_raw);
  o.dweight = dweight.download("dweight (" + context + ")", &o.dweight_raw);
  o.dbias = dbias.download("dbias (" + context + ")", &o.dbias_raw);
  return o;
}

// Checks |got - want| <= allowed(i) for every element, reporting the first failures;
// returns the largest error / allowed ratio among the elements that pass.
template <typename Allowed>
double expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                  Allowed allowed) {
  EXPECT_EQ(got.size(), want.size()) << what;
  if (got.size() != want.size()) return 0.0;
  int64_t failures = 0;
  double worst_ratio = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double error = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double limit = allowed(i);
    if (std::isfinite(got[i]) && error <= limit) {
      worst_ratio = std::max(worst_ratio, limit > 0 ? error / limit : 0.0);
      continue;
    }
    if (failures++ < 5)
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", want " << want[i] << " (error " << error
                    << ", allowed " << limit << ")";
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << got.size() << " elements out of tolerance";
  return worst_ratio;
}

void check_case(cuda::BlasContext& blas, const LinearCase& c, uint64_t seed) {
  SCOPED_TRACE(describe(c));
  const int64_t N = c.N;
  const int in = c.in, out = c.out;
  const Inputs v = make_inputs(c, seed);
  const Outputs got = run_gpu(blas, c, v);

  // The CPU reference on the same (rounded) inputs, and the squared terms of every sum.
  std::vector<float> y(static_cast<size_t>(N) * out), dx = v.dx0, dweight = v.dweight0, dbias = v.dbias0;
  if (!c.accumulate_dx) std::fill(dx.begin(), dx.end(), 0.0f);
  cpu::linear_forward(v.x.data(), v.weight.data(), c.bias ? v.bias.data() : nullptr, N, in, out, y.data());
  cpu::linear_backward(v.x.data(), v.weight.data(), v.dy.data(), N, in, out, dx.data(), c.accumulate_dx,
                       dweight.data(), c.bias ? dbias.data() : nullptr);
  const std::vector<float> x2 = squares(v.x), weight2 = squares(v.weight), dy2 = squares(v.dy);
  std::vector<float> y_terms(y.size()), dx_terms(dx.size()), dweight_terms(dweight.size(), 0.0f);
  cpu::linear_forward(x2.data(), weight2.data(), nullptr, N, in, out, y_terms.data());
  cpu::linear_backward(x2.data(), weight2.data(), dy2.data(), N, in, out, dx_terms.data(), false,
                       dweight_terms.data(), nullptr);

  const double u = kUnitRoundoff;
  auto fp32_term = [u](double terms2, double addend, int64_t K, double want) {
    return 8.0 * u * std::sqrt(static_cast<double>(K + 1)) * std::sqrt(terms2 + addend * addend) +
           2.0 * u * std::fabs(want);
  };
  // A 16-bit result is rounded from an fp32 value that may sit on the other side of a
  // rounding boundary than the CPU's, and cuBLASLt's epilogue may round the product to the
  // type before adding the bias or beta * C: up to three rounding units of the type at the
  // magnitude of the product and the addend (|want| + |addend| bounds the product's).
  auto rounding = [](DType type, float want, double addend) {
    return 3.0 * unit_roundoff(type) * (std::fabs(want) + std::fabs(addend));
  };

  double worst_y = 0, worst_dx = 0, worst_dweight = 0, worst_dbias = 0;
  worst_y = expect_close("y", got.y, y, [&](size_t i) {
    const double b = c.bias ? v.bias[i % out] : 0.0;
    double limit = fp32_term(y_terms[i], b, in, y[i]);
    if (c.y_dtype != DType::f32) limit += rounding(c.y_dtype, y[i], b);
    return limit;
  });
  if (c.with_dx)
    worst_dx = expect_close("dx", got.dx, dx, [&](size_t i) {
      const double addend = c.accumulate_dx ? v.dx0[i] : 0.0;
      return fp32_term(dx_terms[i], addend, out, dx[i]) +
             (c.dtype != DType::f32 ? rounding(c.dtype, dx[i], addend) : 0.0);
    });
  worst_dweight = expect_close("dweight", got.dweight, dweight,
               [&](size_t i) { return fp32_term(dweight_terms[i], v.dweight0[i], N, dweight[i]); });
  if (c.bias) {
    std::vector<double> magnitude(static_cast<size_t>(out), 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int j = 0; j < out; ++j) magnitude[j] += std::fabs(v.dy[static_cast<size_t>(n) * out + j]);
    worst_dbias = expect_close("dbias", got.dbias, dbias, [&](size_t j) {
      return 2.0 * u * std::fabs(dbias[j]) + std::ldexp(static_cast<double>(N), -50) * (magnitude[j] + 1.0);
    });
  }
  std::printf("[ linear   ] %s: largest error / allowed: y %.3f, dx %.3f, dweight %.3f, dbias %.3f\n",
              describe(c).c_str(), worst_y, worst_dx, worst_dweight, worst_dbias);
}

TEST(CudaLinear, ShapesAndTypes) {
  SPT_REQUIRE_CUDA_DEVICE();
  cuda::BlasContext blas;
  struct Shape {
    int64_t N;
    int in, out;
  };
  // 33 and 37 make every row of a 16-bit matrix start at a 2-byte boundary only.
  const Shape shapes[] = {{1, 32, 40}, {3, 40, 32}, {17, 33, 37}, {1000, 256, 1024}, {1000, 1024, 256}};
  uint64_t seed = 100;
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    int variant = 0;
    for (const Shape& s : shapes) {
      LinearCase c;
      c.N = s.N;
      c.in = s.in;
      c.out = s.out;
      c.dtype = c.y_dtype = dtype;
      c.bias = variant % 2 == 0;
      c.accumulate_dx = variant % 3 != 1;
      ++variant;
      check_case(blas, c, seed++);
    }
  }
}

TEST(CudaLinear, Fp32OutputFrom16BitInputs) {
  SPT_REQUIRE_CUDA_DEVICE();
  cuda::BlasContext blas;
  uint64_t seed = 200;
  for (DType dtype : {DType::bf16, DType::f16})
    for (bool bias : {true, false}) {
      LinearCase c;
      c.N = 1000;
      c.in = 256;
      c.out = 1024;
      c.dtype = dtype;
      c.y_dtype = DType::f32;
      c.bias = bias;
      check_case(blas, c, seed++);
      c.N = 3;
      c.in = 40;
      c.out = 32;
      check_case(blas, c, seed++);
    }
}

TEST(CudaLinear, LongSequence) {
  SPT_REQUIRE_CUDA_DEVICE();
  cuda::BlasContext blas;
  LinearCase c;
  c.N = 24576;
  c.in = 512;
  c.out = 2048;
  c.dtype = c.y_dtype = DType::bf16;
  c.bias = true;
  c.accumulate_dx = true;
  check_case(blas, c, 300);
  c.in = 2048;
  c.out = 512;
  c.dtype = c.y_dtype = DType::f32;
  c.accumulate_dx = false;
  check_case(blas, c, 301);
}

TEST(CudaLinear, PointersAlignedOnlyToTheirElements) {
  SPT_REQUIRE_CUDA_DEVICE();
  cuda::BlasContext blas;
  uint64_t seed = 400;
  for (DType dtype : {DType::f32, DType::bf16}) {
    LinearCase c;
    c.N = 100;
    c.in = 64;
    c.out = 96;
    c.dtype = c.y_dtype = dtype;
    c.bias = true;
    c.accumulate_dx = true;
    c.misalign = 1;
    check_case(blas, c, seed++);
    c.with_dx = false;
    check_case(blas, c, seed++);
  }
}

TEST(CudaLinear, RepeatedCallsAreBitwiseIdentical) {
  SPT_REQUIRE_CUDA_DEVICE();
  cudaStream_t stream = nullptr;
  SPT_CUDA_CHECK(cudaStreamCreate(&stream));
  {
    cuda::BlasContext blas(stream);
    for (DType dtype : {DType::f32, DType::bf16}) {
      LinearCase c;
      c.N = 4096;
      c.in = 512;
      c.out = 1536;
      c.dtype = c.y_dtype = dtype;
      c.bias = true;
      c.accumulate_dx = true;
      SCOPED_TRACE(describe(c));
      const Inputs v = make_inputs(c, 500);
      const Outputs first = run_gpu(blas, c, v);
      const Outputs second = run_gpu(blas, c, v);
      EXPECT_TRUE(first.y_raw == second.y_raw) << "y differs between two runs";
      EXPECT_TRUE(first.dx_raw == second.dx_raw) << "dx differs between two runs";
      EXPECT_TRUE(first.dweight_raw == second.dweight_raw) << "dweight differs between two runs";
      EXPECT_TRUE(first.dbias_raw == second.dbias_raw) << "dbias differs between two runs";
    }
  }
  SPT_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(CudaLinear, RejectsBadInputs) {
  SPT_REQUIRE_CUDA_DEVICE();
  cuda::BlasContext blas;
  DeviceBuffer<float> a(4096), b(4096), y(4096), dw(4096), db(64);
  char* raw = reinterpret_cast<char*>(a.data());
  const DType f32 = DType::f32, bf16 = DType::bf16, f16 = DType::f16;
  EXPECT_THROW(cuda::linear_forward(blas, a.data(), b.data(), nullptr, 0, 8, 8, f32, f32, y.data()), Error);
  EXPECT_THROW(cuda::linear_forward(blas, a.data(), b.data(), nullptr, 4, 0, 8, f32, f32, y.data()), Error);
  EXPECT_THROW(cuda::linear_forward(blas, a.data(), b.data(), nullptr, 4, 8, -1, f32, f32, y.data()), Error);
  EXPECT_THROW(cuda::linear_forward(blas, nullptr, b.data(), nullptr, 4, 8, 8, f32, f32, y.data()), Error);
  EXPECT_THROW(cuda::linear_forward(blas, a.data(), nullptr, nullptr, 4, 8, 8, f32, f32, y.data()), Error);
  EXPECT_THROW(cuda::linear_forward(blas, a.data(), b.data(), nullptr, 4, 8, 8, f32, f32, nullptr), Error);
  EXPECT_THROW(cuda::linear_forward(blas, raw + 2, b.data(), nullptr, 4, 8, 8, f32, f32, y.data()), Error);
  EXPECT_THROW(cuda::linear_forward(blas, raw + 1, b.data(), nullptr, 4, 8, 8, bf16, bf16, y.data()), Error);
  EXPECT_THROW(cuda::linear_forward(blas, a.data(), b.data(), nullptr, 4, 8, 8, bf16, f16, y.data()), Error);
  EXPECT_THROW(cuda::linear_forward(blas, a.data(), b.data(), reinterpret_cast<const float*>(raw + 2), 4, 8, 8, f32,
                                    f32, y.data()),
               Error);
  EXPECT_THROW(cuda::linear_backward(blas, a.data(), b.data(), y.data(), 4, 8, 8, f32, nullptr, false, nullptr,
                                     nullptr),
               Error);
  EXPECT_THROW(cuda::linear_backward(blas, a.data(), nullptr, y.data(), 4, 8, 8, f32, b.data(), false, dw.data(),
                                     db.data()),
               Error);
  EXPECT_THROW(cuda::linear_backward(blas, a.data(), b.data(), nullptr, 4, 8, 8, f32, nullptr, false, dw.data(),
                                     db.data()),
               Error);
  EXPECT_THROW(cuda::linear_backward(blas, a.data(), b.data(), y.data(), 4, 8, 8, bf16, raw + 1, false, dw.data(),
                                     db.data()),
               Error);
  expect_error([&] { cuda::linear_forward(blas, a.data(), b.data(), nullptr, 4, 8, 8, f32, bf16, y.data()); },
               {"linear_forward", "N=4"});
  EXPECT_NO_THROW(cuda::linear_forward(blas, a.data(), b.data(), db.data(), 4, 8, 8, f32, f32, y.data()));
  EXPECT_NO_THROW(cuda::linear_backward(blas, a.data(), nullptr, y.data(), 4, 8, 8, f32, nullptr, false, dw.data(),
                                        db.data()));
  SPT_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace spt

#else

TEST(CudaLinear, NeedsCudaBuild) { GTEST_SKIP() << "built without CUDA: configure with -DSPT_CUDA=ON on a machine with nvcc"; }

#endif
