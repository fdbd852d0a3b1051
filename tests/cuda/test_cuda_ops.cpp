// CudaBackend vs ReferenceBackend for every op but attention (test_cuda_attention.cpp), on device
// tensors, with fresh random inputs, outputs poisoned with NaN, and strided views. Skipped without
// a usable GPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/reference_backend.h"
#include "tests/cuda/cuda_test_util.h"

namespace ds {
namespace {

using test::AllClose;
using test::Bf16Matrix;
using test::FetchBf16;
using test::Poison;
using test::Poisoned;
using test::Random;
using test::RoundedToBf16;
using test::Strided;
using test::UntouchedOutside;

constexpr double kF32Rtol = 1e-5;
// TF32 keeps 10 mantissa bits of each GEMM input: ~2⁻¹¹ relative per product, so ~4e-4 of the
// output's rms per element and up to ~4.5× that at the worst of 10⁵ elements.
constexpr double kTf32Rtol = 5e-3;

class CudaOps : public test::CudaTest {
 protected:
  // rms_norm and rms_norm_rope on the q columns of a BF16 [n, 3·heads·dh] buffer.
  void CheckRmsNormsOnBf16Rows(int64_t heads, int64_t dh);

  ReferenceBackend ref_;
  std::mt19937 rng_ = test::TestRng();
};

// ---- linear ------------------------------------------------------------------------------------

struct LinearCase {
  int64_t m, k, n;
  bool bias;
  int64_t x_pad, y_pad;
};

void CheckLinear(CudaBackend& be, ReferenceBackend& ref, std::mt19937& rng, const LinearCase& c, double rtol) {
  SCOPED_TRACE("m " + std::to_string(c.m) + " k " + std::to_string(c.k) + " n " + std::to_string(c.n));
  const HostBuffer xb = Random(rng, static_cast<size_t>(c.m * (c.k + c.x_pad)));
  const HostBuffer wb = Random(rng, static_cast<size_t>(c.n * c.k));
  const HostBuffer bb = Random(rng, static_cast<size_t>(c.n));
  const HostBuffer want_b = Poisoned(static_cast<size_t>(c.m * c.n));
  const HostBuffer got_b = Poisoned(static_cast<size_t>(c.m * (c.n + c.y_pad)));
  const Tensor x = Strided(xb.data(), {c.m, c.k}, c.k + c.x_pad), w = wb.view({c.n, c.k}), b = bb.view({c.n});
  Tensor want = want_b.view({c.m, c.n}), got = Strided(got_b.data(), {c.m, c.n}, c.n + c.y_pad);
  ref.linear(x, w, c.bias ? &b : nullptr, want);

  DS_MIRROR(dx, be, xb);
  DS_MIRROR(dw, be, wb);
  DS_MIRROR(db, be, bb);
  DS_MIRROR(dy, be, got_b);
  const Tensor db_view = db(b);
  Tensor dy_view = dy(got);
  be.linear(dx(x), dw(w), c.bias ? &db_view : nullptr, dy_view);
  const Status s = dy.Fetch();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(AllClose(got, want, rtol));
  EXPECT_TRUE(UntouchedOutside(got_b, got));
}

constexpr LinearCase kLinearCases[] = {
    {1, 16, 8, true, 0, 0},       {33, 64, 48, true, 5, 3},        {7, 1, 5, false, 0, 2},
    {300, 1536, 512, true, 0, 0}, {77, 512, 1536, false, 1536, 0}, {129, 96, 257, true, 3, 1},
};

TEST_F(CudaOps, LinearTf32MatchesReference) {
  for (const LinearCase& c : kLinearCases) CheckLinear(*cuda_, ref_, rng_, c, kTf32Rtol);
}

TEST_F(CudaOps, LinearF32MatchesReference) {
  CudaOptions o = DefaultOptions();
  o.tf32 = false;
  auto f32 = Make(o);
  ASSERT_TRUE(f32);
  for (const LinearCase& c : kLinearCases) CheckLinear(*f32, ref_, rng_, c, kF32Rtol);
}

// BF16 weights as stored: x is rounded to bf16 (to nearest even, as core's FloatToBFloat16) and the
// products of two bf16 values are exact in f32, so the reference is linear in f32 on the rounded
// operands and the only difference left is the order of the f32 sums. Feeding x unrounded (or in
// TF32) would be ~2e-3 off.
constexpr double kBf16OperandsRtol = 1e-4;

TEST_F(CudaOps, LinearTakesBf16WeightsAsStored) {
  EXPECT_TRUE(cuda_->LinearAcceptsWeights(DType::kBF16));
  EXPECT_FALSE(cuda_->LinearAcceptsWeights(DType::kF16));
  for (const LinearCase& c : kLinearCases) {
    for (const bool weights_on_device : {true, false}) {
      SCOPED_TRACE("m " + std::to_string(c.m) + " k " + std::to_string(c.k) + " n " + std::to_string(c.n) +
                   (weights_on_device ? ", device w" : ", host w"));
      const HostBuffer xb = Random(rng_, static_cast<size_t>(c.m * (c.k + c.x_pad)));
      const HostBuffer wb = Random(rng_, static_cast<size_t>(c.n * c.k));
      const HostBuffer bb = Random(rng_, static_cast<size_t>(c.n));
      std::vector<uint16_t> w16(wb.size());
      for (size_t i = 0; i < wb.size(); ++i) w16[i] = FloatToBFloat16(wb.data()[i]);
      const HostBuffer w_rounded = test::Bf16Rounded(wb), x_rounded = test::Bf16Rounded(xb);
      const Tensor b = bb.view({c.n});
      const HostBuffer want_b = Poisoned(static_cast<size_t>(c.m * c.n));
      const HostBuffer got_b = Poisoned(static_cast<size_t>(c.m * (c.n + c.y_pad)));
      Tensor want = want_b.view({c.m, c.n}), got = Strided(got_b.data(), {c.m, c.n}, c.n + c.y_pad);
      ref_.linear(Strided(x_rounded.data(), {c.m, c.k}, c.k + c.x_pad), w_rounded.view({c.n, c.k}),
                  c.bias ? &b : nullptr, want);

      const Tensor w_host = Tensor::View(w16.data(), DType::kBF16, {c.n, c.k});
      auto w_dev = cuda_->NewBuffer(DType::kBF16, {c.n, c.k});
      ASSERT_TRUE(w_dev.ok()) << w_dev.status().message();
      ASSERT_TRUE(cuda_->CopyToBackend(w_host, w_dev->tensor).ok());
      DS_MIRROR(dx, *cuda_, xb);
      DS_MIRROR(db, *cuda_, bb);
      DS_MIRROR(dy, *cuda_, got_b);
      const Tensor db_view = db(b);
      Tensor dy_view = dy(got);
      cuda_->linear(dx(Strided(xb.data(), {c.m, c.k}, c.k + c.x_pad)), weights_on_device ? w_dev->tensor : w_host,
                    c.bias ? &db_view : nullptr, dy_view);
      const Status s = dy.Fetch();
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_TRUE(AllClose(got, want, kBf16OperandsRtol));
      EXPECT_TRUE(UntouchedOutside(got_b, got));
    }
  }
}

// The FFN's path on the GPU: fc1 = linear_gelu_tanh with BF16 w and a BF16 y (cuBLASLt's
// GELU_BIAS epilogue; the bias is rounded to BF16, the type cuBLASLt requires for a BF16 D), then
// fc2 = linear on that BF16 x. The reference computes in f32 on the same rounded operands; y's own
// rounding to bf16 (2⁻⁹ relative) bounds the first comparison, the second has f32 output.
TEST_F(CudaOps, LinearGeluWritesBf16AndLinearReadsIt) {
  // 47: a BF16 y whose rows are 94 bytes apart (2-byte aligned for cuBLASLt)
  for (const LinearCase& c : {LinearCase{33, 64, 48, true, 0, 0}, LinearCase{300, 1536, 512, true, 0, 0},
                              LinearCase{129, 96, 256, false, 0, 0}, LinearCase{20, 32, 47, true, 0, 0}}) {
    SCOPED_TRACE("m " + std::to_string(c.m) + " k " + std::to_string(c.k) + " n " + std::to_string(c.n));
    const HostBuffer xb = Random(rng_, static_cast<size_t>(c.m * c.k));
    const HostBuffer w1 = Random(rng_, static_cast<size_t>(c.n * c.k)), b1 = Random(rng_, static_cast<size_t>(c.n));
    const HostBuffer w2 = Random(rng_, static_cast<size_t>(c.k * c.n)), b2 = Random(rng_, static_cast<size_t>(c.k));
    const Bf16Matrix w1_16 = RoundedToBf16(*cuda_, w1, c.n, c.k), w2_16 = RoundedToBf16(*cuda_, w2, c.k, c.n);
    const HostBuffer x_r = test::Bf16Rounded(xb), b1_r = test::Bf16Rounded(b1);

    // Reference: h = gelu_tanh(x_r·w1ᵀ + b1_r), then f = bf16(h)·w2ᵀ + b2.
    const HostBuffer h_want(static_cast<size_t>(c.m * c.n)), f_want(static_cast<size_t>(c.m * c.k));
    Tensor hw = h_want.view({c.m, c.n}), fw = f_want.view({c.m, c.k});
    const Tensor b1v = b1_r.view({c.n}), b2v = b2.view({c.k});
    ref_.linear(x_r.view({c.m, c.k}), w1_16.widened.view({c.n, c.k}), c.bias ? &b1v : nullptr, hw);
    ref_.gelu_tanh(hw);

    auto h_dev = cuda_->NewBuffer(DType::kBF16, {c.m, c.n});
    ASSERT_TRUE(h_dev.ok()) << h_dev.status().message();
    DS_MIRROR(dx, *cuda_, xb);
    DS_MIRROR(db1, *cuda_, b1);
    const Tensor db1_view = db1(b1.view({c.n}));
    cuda_->linear_gelu_tanh(dx(xb.view({c.m, c.k})), w1_16.device.tensor, c.bias ? &db1_view : nullptr, h_dev->tensor);
    const HostBuffer h_got = FetchBf16(*cuda_, h_dev->tensor, c.m, c.n);
    Status s = cuda_->Synchronize();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(h_got.view({c.m, c.n}), hw, 1e-2)) << "linear_gelu_tanh, BF16 y";

    // fc2 on the BF16 hidden rows the GPU wrote, against the reference on the same values.
    ref_.linear(h_got.view({c.m, c.n}), w2_16.widened.view({c.k, c.n}), c.bias ? &b2v : nullptr, fw);
    const HostBuffer f_got_b = Poisoned(static_cast<size_t>(c.m * c.k));
    DS_MIRROR(db2, *cuda_, b2);
    DS_MIRROR(df, *cuda_, f_got_b);
    const Tensor db2_view = db2(b2v);
    Tensor df_view = df(f_got_b.view({c.m, c.k}));
    cuda_->linear(h_dev->tensor, w2_16.device.tensor, c.bias ? &db2_view : nullptr, df_view);
    s = df.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(f_got_b.view({c.m, c.k}), fw, kBf16OperandsRtol)) << "linear, BF16 x";

    // linear_gelu_tanh into float32: only the GELU form and the sum order differ from the reference.
    const HostBuffer h32_b = Poisoned(static_cast<size_t>(c.m * c.n));
    const HostBuffer h32_want(h32_b.size());
    Tensor h32w = h32_want.view({c.m, c.n});
    const Tensor b1_full = b1.view({c.n});
    ref_.linear(x_r.view({c.m, c.k}), w1_16.widened.view({c.n, c.k}), c.bias ? &b1_full : nullptr, h32w);
    ref_.gelu_tanh(h32w);
    DS_MIRROR(dh32, *cuda_, h32_b);
    Tensor dh32_view = dh32(h32_b.view({c.m, c.n}));
    cuda_->linear_gelu_tanh(dx(xb.view({c.m, c.k})), w1_16.device.tensor, c.bias ? &db1_view : nullptr, dh32_view);
    s = dh32.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(h32_b.view({c.m, c.n}), h32w, 2e-3)) << "linear_gelu_tanh, f32 y";
  }
}

// F32 x with BF16 weights is rounded into arena scratch in blocks of rows that fit: a 64 MiB arena
// (32 MiB of it cuBLASLt's workspace) takes an 8192 × 4096 x (64 MiB in bf16) in 3 blocks. The
// operands live outside the arena (NewBuffer).
TEST_F(CudaOps, LinearRoundsXInRowBlocksWhenTheArenaIsSmall) {
  constexpr int64_t m = 8192, k = 4096, n = 24;
  auto small = MakeWithArena(kSmallArena);
  ASSERT_TRUE(small);
  const size_t free_bytes = ArenaFree(*small, kSmallArena);
  ASSERT_LT(free_bytes, static_cast<size_t>(m * k * 2)) << "the test needs x not to fit the arena at once";
  const HostBuffer xb = Random(rng_, static_cast<size_t>(m * k)), wb = Random(rng_, static_cast<size_t>(n * k));
  const HostBuffer bb = Random(rng_, static_cast<size_t>(n));
  const Bf16Matrix w16 = RoundedToBf16(*small, wb, n, k);
  const HostBuffer x_r = test::Bf16Rounded(xb);
  const HostBuffer want_b(static_cast<size_t>(m * n)), got_b = Poisoned(static_cast<size_t>(m * n));
  Tensor want = want_b.view({m, n});
  const Tensor b = bb.view({n});
  ref_.linear(x_r.view({m, k}), w16.widened.view({n, k}), &b, want);
  auto x_dev = small->NewBuffer(DType::kF32, {m, k});
  auto b_dev = small->NewBuffer(DType::kF32, {n});
  auto y_dev = small->NewBuffer(DType::kF32, {m, n});
  ASSERT_TRUE(x_dev.ok() && b_dev.ok() && y_dev.ok());
  ASSERT_TRUE(small->CopyToBackend(xb.view({m, k}), x_dev->tensor).ok());
  ASSERT_TRUE(small->CopyToBackend(b, b_dev->tensor).ok());
  small->linear(x_dev->tensor, w16.device.tensor, &b_dev->tensor, y_dev->tensor);
  ASSERT_TRUE(small->CopyToHost(y_dev->tensor, got_b.view({m, n})).ok());
  const Status s = small->Synchronize();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(AllClose(got_b.view({m, n}), want, kBf16OperandsRtol));
}

// Which GELU the epilogue computes: pre-activations exactly ±1, ±1.5, ±2.5, ±3 (x has one nonzero
// column, w ones in it; all bf16-exact), where the tanh form Wan2.1 uses and the erf form differ by
// 1.5e-4 to 4.4e-4: each output must be within a quarter of that gap of the tanh form (room for a
// fast tanh inside the epilogue, none for the other form).
TEST_F(CudaOps, LinearGeluIsTheTanhForm) {
  const float points[] = {-3.0f, -2.5f, -1.5f, -1.0f, 1.0f, 1.5f, 2.5f, 3.0f};
  constexpr int64_t m = 8, k = 8, n = 8;
  HostBuffer xb(m * k), wb(n * k);
  std::fill_n(xb.data(), m * k, 0.0f);
  std::fill_n(wb.data(), n * k, 0.0f);
  for (int64_t i = 0; i < m; ++i) xb.data()[i * k] = points[i];
  for (int64_t j = 0; j < n; ++j) wb.data()[j * k] = 1.0f;
  const Bf16Matrix w16 = RoundedToBf16(*cuda_, wb, n, k);
  const HostBuffer got_b = Poisoned(static_cast<size_t>(m * n));
  DS_MIRROR(dx, *cuda_, xb);
  DS_MIRROR(dy, *cuda_, got_b);
  Tensor dy_view = dy(got_b.view({m, n}));
  cuda_->linear_gelu_tanh(dx(xb.view({m, k})), w16.device.tensor, nullptr, dy_view);
  const Status s = dy.Fetch();
  ASSERT_TRUE(s.ok()) << s.message();
  for (int64_t i = 0; i < m; ++i) {
    const double v = points[i];
    const double tanh_form = 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    const double erf_form = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    for (int64_t j = 0; j < n; ++j) {
      EXPECT_NEAR(got_b.data()[i * n + j], tanh_form, std::abs(tanh_form - erf_form) / 4)
          << "pre-activation " << v << " (erf form " << erf_form << ")";
    }
  }
}

// With float32 weights linear_gelu_tanh is linear then the GELU kernel, in TF32.
TEST_F(CudaOps, LinearGeluWithF32WeightsMatchesReference) {
  const LinearCase c{77, 512, 300, true, 4, 2};
  const HostBuffer xb = Random(rng_, static_cast<size_t>(c.m * (c.k + c.x_pad)));
  const HostBuffer wb = Random(rng_, static_cast<size_t>(c.n * c.k)), bb = Random(rng_, static_cast<size_t>(c.n));
  const HostBuffer want_b = Poisoned(static_cast<size_t>(c.m * c.n));
  const HostBuffer got_b = Poisoned(static_cast<size_t>(c.m * (c.n + c.y_pad)));
  const Tensor x = Strided(xb.data(), {c.m, c.k}, c.k + c.x_pad), w = wb.view({c.n, c.k}), b = bb.view({c.n});
  Tensor want = want_b.view({c.m, c.n}), got = Strided(got_b.data(), {c.m, c.n}, c.n + c.y_pad);
  ref_.linear(x, w, &b, want);
  ref_.gelu_tanh(want);
  DS_MIRROR(dx, *cuda_, xb);
  DS_MIRROR(dw, *cuda_, wb);
  DS_MIRROR(db, *cuda_, bb);
  DS_MIRROR(dy, *cuda_, got_b);
  const Tensor db_view = db(b);
  Tensor dy_view = dy(got);
  cuda_->linear_gelu_tanh(dx(x), dw(w), &db_view, dy_view);
  const Status s = dy.Fetch();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(AllClose(got, want, kTf32Rtol));
  EXPECT_TRUE(UntouchedOutside(got_b, got));
}

// BF16 activations go only with BF16 weights: anything else is an error naming the operand.
TEST_F(CudaOps, Bf16ActivationsWithF32WeightsAreAnError) {
  const HostBuffer wb = Random(rng_, 16 * 8), xb = Random(rng_, 4 * 16);
  auto y16 = cuda_->NewBuffer(DType::kBF16, {4, 8});
  ASSERT_TRUE(y16.ok());
  DS_MIRROR(dx, *cuda_, xb);
  DS_MIRROR(dw, *cuda_, wb);
  cuda_->linear(dx(xb.view({4, 16})), dw(wb.view({8, 16})), nullptr, y16->tensor);
  const Status s = cuda_->Synchronize();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("y is BF16 with F32 weights"), std::string::npos) << s.message();
}

// A backend asked for full f32 GEMMs does not take BF16 weights, so models widen them to float32.
TEST_F(CudaOps, FullF32BackendDoesNotTakeBf16Weights) {
  CudaOptions o = DefaultOptions();
  o.tf32 = false;
  auto f32 = Make(o);
  ASSERT_TRUE(f32);
  EXPECT_FALSE(f32->LinearAcceptsWeights(DType::kBF16));
  EXPECT_TRUE(f32->LinearAcceptsWeights(DType::kF32));
}

// cos/sin [n, half] of random angles in (−π, π): RoPE tables for the rope tests.
struct RopeTables {
  HostBuffer cos, sin;
};
RopeTables RandomRopeTables(std::mt19937& rng, int64_t n, int64_t half) {
  const HostBuffer angles = Random(rng, static_cast<size_t>(n * half), -3.1f, 3.1f);
  RopeTables t{HostBuffer(angles.size()), HostBuffer(angles.size())};
  for (size_t i = 0; i < angles.size(); ++i) {
    t.cos.data()[i] = std::cos(angles.data()[i]);
    t.sin.data()[i] = std::sin(angles.data()[i]);
  }
  return t;
}

// ---- norms -------------------------------------------------------------------------------------

// Rows padded to 16-byte multiples take the float4 kernels (LayerNorm), the others the scalar ones.
struct RowsCase {
  int64_t rows, d, x_pad, y_pad;
};
// Widths around the register-resident kernels' sizes (4, 8, 12 vectors a lane: 512, 1024, 1536
// elements), partial last groups (1000, 516, 1028), and past them (5120).
constexpr RowsCase kRowsCases[] = {{1, 7, 0, 0},     {64, 1536, 3, 5}, {64, 1536, 4, 8}, {5, 5120, 0, 0},
                                   {300, 64, 64, 0}, {9, 1000, 0, 4},  {3, 512, 0, 0},   {4, 516, 0, 4},
                                   {2, 1028, 4, 0},  {2, 33, 1, 1}};

TEST_F(CudaOps, LayerNormMatchesReference) {
  for (const RowsCase& c : kRowsCases) {
    for (int affine = 0; affine < 4; ++affine) {
      SCOPED_TRACE("rows " + std::to_string(c.rows) + " d " + std::to_string(c.d) + " affine " +
                   std::to_string(affine));
      // A mean far from 0 makes a one-pass variance lose digits; the kernel must not.
      const HostBuffer xb = Random(rng_, static_cast<size_t>(c.rows * (c.d + c.x_pad)), 2.0f, 4.0f);
      const HostBuffer wb = Random(rng_, static_cast<size_t>(c.d)), bb = Random(rng_, static_cast<size_t>(c.d));
      const HostBuffer want_b = Poisoned(static_cast<size_t>(c.rows * c.d));
      const HostBuffer got_b = Poisoned(static_cast<size_t>(c.rows * (c.d + c.y_pad)));
      const Tensor x = Strided(xb.data(), {c.rows, c.d}, c.d + c.x_pad), w = wb.view({c.d}), b = bb.view({c.d});
      Tensor want = want_b.view({c.rows, c.d}), got = Strided(got_b.data(), {c.rows, c.d}, c.d + c.y_pad);
      const Tensor* wp = affine & 1 ? &w : nullptr;
      const Tensor* bp = affine & 2 ? &b : nullptr;
      ref_.layer_norm(x, wp, bp, 1e-6f, want);
      DS_MIRROR(dx, *cuda_, xb);
      DS_MIRROR(dw, *cuda_, wb);
      DS_MIRROR(dbias, *cuda_, bb);
      DS_MIRROR(dy, *cuda_, got_b);
      const Tensor dwv = dw(w), dbv = dbias(b);
      Tensor dyv = dy(got);
      cuda_->layer_norm(dx(x), wp ? &dwv : nullptr, bp ? &dbv : nullptr, 1e-6f, dyv);
      const Status s = dy.Fetch();
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_TRUE(AllClose(got, want, kF32Rtol));
      EXPECT_TRUE(UntouchedOutside(got_b, got));
    }
  }
}

// The norms on buffers of exactly their size (NewBuffer: an allocation each, not arena space), so
// that compute-sanitizer memcheck (bench/gpu_check.sh) sees any read past a row's or a vector's
// end: the register kernels (1536, and 1028 with a partial last group), the streaming one (5120),
// the scalar one (33); layer_norm_modulate and rms_norm alike.
TEST_F(CudaOps, NormsOnExactAllocations) {
  const int64_t rows = 5;
  for (const int64_t d : {int64_t{1536}, int64_t{1028}, int64_t{5120}, int64_t{33}}) {
    SCOPED_TRACE("d " + std::to_string(d));
    const HostBuffer xb = Random(rng_, static_cast<size_t>(rows * d), -3.0f, 5.0f);
    const HostBuffer shift_b = Random(rng_, static_cast<size_t>(d)), scale_b = Random(rng_, static_cast<size_t>(d));
    const Tensor x = xb.view({rows, d}), shift = shift_b.view({d}), scale = scale_b.view({d});
    auto exact = [&](const Tensor& host) {
      auto b = cuda_->NewBuffer(DType::kF32, {host.numel()});
      EXPECT_TRUE(b.ok()) << b.status().message();
      if (b.ok()) {
        EXPECT_TRUE(cuda_->Upload(host, b->tensor).ok());
      }
      return b;
    };
    auto dx = exact(xb.view({rows * d})), dshift = exact(shift), dscale = exact(scale);
    auto dy = cuda_->NewBuffer(DType::kF32, {rows, d});
    ASSERT_TRUE(dx.ok() && dshift.ok() && dscale.ok() && dy.ok());
    const Tensor dxv = Tensor::View(dx->tensor.data, DType::kF32, {rows, d}, Device::kCuda);
    const HostBuffer want_b(xb.size()), got_b(xb.size());
    Tensor want = want_b.view({rows, d}), got = got_b.view({rows, d});

    ref_.layer_norm_modulate(x, shift, scale, 1e-6f, want);
    cuda_->layer_norm_modulate(dxv, dshift->tensor, dscale->tensor, 1e-6f, dy->tensor);
    ASSERT_TRUE(cuda_->CopyToHost(dy->tensor, got).ok());
    EXPECT_TRUE(AllClose(got, want, kF32Rtol)) << "layer_norm_modulate";

    std::copy_n(xb.data(), xb.size(), want_b.data());
    ref_.rms_norm(want, scale, 1e-6f);
    Tensor dx_rows = dxv;
    cuda_->rms_norm(dx_rows, dscale->tensor, 1e-6f);
    ASSERT_TRUE(cuda_->CopyToHost(dx_rows, got).ok());
    EXPECT_TRUE(AllClose(got, want, kF32Rtol)) << "rms_norm";
  }
}

TEST_F(CudaOps, LayerNormModulateMatchesReference) {
  for (const RowsCase& c : kRowsCases) {
    SCOPED_TRACE("rows " + std::to_string(c.rows) + " d " + std::to_string(c.d));
    const HostBuffer xb = Random(rng_, static_cast<size_t>(c.rows * (c.d + c.x_pad)), -3.0f, 5.0f);
    const HostBuffer shb = Random(rng_, static_cast<size_t>(c.d)), scb = Random(rng_, static_cast<size_t>(c.d));
    const HostBuffer want_b = Poisoned(static_cast<size_t>(c.rows * c.d));
    const HostBuffer got_b = Poisoned(static_cast<size_t>(c.rows * (c.d + c.y_pad)));
    const Tensor x = Strided(xb.data(), {c.rows, c.d}, c.d + c.x_pad), shift = shb.view({c.d}), scale = scb.view({c.d});
    Tensor want = want_b.view({c.rows, c.d}), got = Strided(got_b.data(), {c.rows, c.d}, c.d + c.y_pad);
    ref_.layer_norm_modulate(x, shift, scale, 1e-6f, want);
    DS_MIRROR(dx, *cuda_, xb);
    DS_MIRROR(dsh, *cuda_, shb);
    DS_MIRROR(dsc, *cuda_, scb);
    DS_MIRROR(dy, *cuda_, got_b);
    Tensor dyv = dy(got);
    cuda_->layer_norm_modulate(dx(x), dsh(shift), dsc(scale), 1e-6f, dyv);
    const Status s = dy.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(got, want, kF32Rtol));
    EXPECT_TRUE(UntouchedOutside(got_b, got));
  }
}

// Both LayerNorms writing BF16 rows (what the Wan blocks' GEMMs read): the f32 result rounded
// once, so within bf16's half-ulp of the reference (2⁻⁹ relative, under the 4e-3 allowed), on the
// float4 kernel (contiguous, aligned) and the scalar one (odd width).
TEST_F(CudaOps, LayerNormsWriteBf16Rows) {
  for (auto [rows, d] : {std::pair<int64_t, int64_t>{64, 1536}, {9, 1000}, {300, 64}, {5, 5120}, {7, 33}}) {
    for (bool modulate : {false, true}) {
      SCOPED_TRACE("rows " + std::to_string(rows) + " d " + std::to_string(d) + (modulate ? " modulate" : " affine"));
      const HostBuffer xb = Random(rng_, static_cast<size_t>(rows * d), -2.0f, 3.0f);
      const HostBuffer va = Random(rng_, static_cast<size_t>(d)), vb = Random(rng_, static_cast<size_t>(d));
      const HostBuffer want_b(static_cast<size_t>(rows * d));
      Tensor want = want_b.view({rows, d});
      const Tensor x = xb.view({rows, d}), a = va.view({d}), b = vb.view({d});
      if (modulate) {
        ref_.layer_norm_modulate(x, a, b, 1e-6f, want);
      } else {
        ref_.layer_norm(x, &a, &b, 1e-6f, want);
      }
      auto y = cuda_->NewBuffer(DType::kBF16, {rows, d});
      ASSERT_TRUE(y.ok()) << y.status().message();
      DS_MIRROR(dx, *cuda_, xb);
      DS_MIRROR(da, *cuda_, va);
      DS_MIRROR(db, *cuda_, vb);
      const Tensor dav = da(a), dbv = db(b);
      if (modulate) {
        cuda_->layer_norm_modulate(dx(x), dav, dbv, 1e-6f, y->tensor);
      } else {
        cuda_->layer_norm(dx(x), &dav, &dbv, 1e-6f, y->tensor);
      }
      const HostBuffer got = FetchBf16(*cuda_, y->tensor, rows, d);
      const Status s = cuda_->Synchronize();
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_TRUE(AllClose(got.view({rows, d}), want, 4e-3));
      EXPECT_FALSE(AllClose(got.view({rows, d}), want, 1e-6)) << "the rows should carry bf16 rounding";
    }
  }
}

// Per-head q/k norm: rows are the heads of [N, H, dh] views whose token stride exceeds H·dh.
TEST_F(CudaOps, RmsNormPerHeadMatchesReference) {
  for (auto [n, heads, dh, pad] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 8, 0},
                                   {77, 12, 128, 2 * 12 * 128},
                                   {300, 3, 64, 5},
                                   // whole rows: 8 vectors a lane with a partial last group, 12, past the register
                                   // kernels (f32, streamed), and unaligned (scalar)
                                   {9, 1, 1000, 4},
                                   {4, 1, 1536, 0},
                                   {3, 1, 5120, 0},
                                   {5, 2, 1000, 2}}) {
    SCOPED_TRACE("n " + std::to_string(n) + " heads " + std::to_string(heads) + " dh " + std::to_string(dh));
    const int64_t row = heads * dh + pad;
    const HostBuffer want_b = Random(rng_, static_cast<size_t>(n * row), -2.0f, 2.0f);
    const HostBuffer got_b(want_b.size());
    std::copy(want_b.data(), want_b.data() + want_b.size(), got_b.data());
    const HostBuffer wb = Random(rng_, static_cast<size_t>(dh));
    Tensor want = Strided(want_b.data(), {n, heads, dh}, row), got = Strided(got_b.data(), {n, heads, dh}, row);
    ref_.rms_norm(want, wb.view({dh}), 1e-6f);
    DS_MIRROR(dx, *cuda_, got_b);
    DS_MIRROR(dw, *cuda_, wb);
    Tensor dxv = dx(got);
    cuda_->rms_norm(dxv, dw(wb.view({dh})), 1e-6f);
    const Status s = dx.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(got, want, kF32Rtol));
    for (size_t i = 0; i < got_b.size(); ++i) {  // the padding between tokens is untouched
      if (static_cast<int64_t>(i) % row >= heads * dh) {
        ASSERT_EQ(got_b.data()[i], want_b.data()[i]) << i;
      }
    }
  }
}

// ---- element-wise ------------------------------------------------------------------------------

enum class Elementwise { kGateResidual, kAdd, kMul, kSub, kGelu, kSilu };

void RunElementwise(Backend& be, Elementwise op, Tensor& x, const Tensor& gate, const Tensor& f) {
  switch (op) {
    case Elementwise::kGateResidual:
      be.gate_residual(x, gate, f);
      break;
    case Elementwise::kAdd:
      be.add(x, f);
      break;
    case Elementwise::kMul:
      be.mul(x, f);
      break;
    case Elementwise::kSub:
      be.sub(x, f);
      break;
    case Elementwise::kGelu:
      be.gelu_tanh(x);
      break;
    case Elementwise::kSilu:
      be.silu(x);
      break;
  }
}

TEST_F(CudaOps, ElementwiseMatchReference) {
  for (Elementwise op : {Elementwise::kGateResidual, Elementwise::kAdd, Elementwise::kMul, Elementwise::kSub,
                         Elementwise::kGelu, Elementwise::kSilu}) {
    for (const RowsCase& c : kRowsCases) {
      SCOPED_TRACE("op " + std::to_string(static_cast<int>(op)) + " rows " + std::to_string(c.rows) + " d " +
                   std::to_string(c.d));
      const HostBuffer want_b = Random(rng_, static_cast<size_t>(c.rows * (c.d + c.x_pad)), -6.0f, 6.0f);
      const HostBuffer got_b(want_b.size());
      std::copy(want_b.data(), want_b.data() + want_b.size(), got_b.data());
      const HostBuffer fb = Random(rng_, static_cast<size_t>(c.rows * (c.d + c.y_pad)));
      const HostBuffer gb = Random(rng_, static_cast<size_t>(c.d));
      Tensor want = Strided(want_b.data(), {c.rows, c.d}, c.d + c.x_pad);
      Tensor got = Strided(got_b.data(), {c.rows, c.d}, c.d + c.x_pad);
      const Tensor f = Strided(fb.data(), {c.rows, c.d}, c.d + c.y_pad), gate = gb.view({c.d});
      RunElementwise(ref_, op, want, gate, f);
      DS_MIRROR(dx, *cuda_, got_b);
      DS_MIRROR(df, *cuda_, fb);
      DS_MIRROR(dg, *cuda_, gb);
      Tensor dxv = dx(got);
      RunElementwise(*cuda_, op, dxv, dg(gate), df(f));
      const Status s = dx.Fetch();
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_TRUE(AllClose(got, want, kF32Rtol));
      for (int64_t r = 0; r < c.rows; ++r) {  // padding untouched
        for (int64_t i = c.d; i < c.d + c.x_pad; ++i) {
          ASSERT_EQ(got_b.data()[r * (c.d + c.x_pad) + i], want_b.data()[r * (c.d + c.x_pad) + i]);
        }
      }
    }
  }
}

// Σ|a − b| and Σ|b| against the host's float64 sums: one element, a partial block, more elements
// than the grid's threads (the grid-stride loop) and a 480p residual stream of the 1.3B; the same
// inputs give the same bits twice (the first-block cache decides on them).
TEST_F(CudaOps, AbsDiffSumsMatchTheHostAndRepeat) {
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{3} * 1024 * 1024 + 7, int64_t{32760} * 1536}) {
    SCOPED_TRACE(n);
    const HostBuffer ab = Random(rng_, static_cast<size_t>(n), -3.0f, 3.0f), bb = Random(rng_, static_cast<size_t>(n));
    float want[2] = {0, 0};
    Tensor wt = Tensor::View(want, DType::kF32, {2});
    ref_.abs_diff_sums(ab.view({n}), bb.view({n}), wt);
    const HostBuffer sums_b(2);
    DS_MIRROR(da, *cuda_, ab);
    DS_MIRROR(db, *cuda_, bb);
    DS_MIRROR(dsums, *cuda_, sums_b);
    Tensor sums = dsums(sums_b.view({2}));
    cuda_->abs_diff_sums(da(ab.view({n})), db(bb.view({n})), sums);
    Status s = dsums.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    const float first[2] = {sums_b.data()[0], sums_b.data()[1]};
    EXPECT_NEAR(first[0], want[0], 1e-4 * want[0]);  // float partial sums
    EXPECT_NEAR(first[1], want[1], 1e-4 * want[1]);
    cuda_->abs_diff_sums(da(ab.view({n})), db(bb.view({n})), sums);
    s = dsums.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(sums_b.data()[0], first[0]);
    EXPECT_EQ(sums_b.data()[1], first[1]);
  }
}

// ---- softmax with a relative-position bias (UMT5) ---------------------------------------------------

// Against the host default (Backend::softmax_relative_bias) on the same scores: Lq ≠ Lk (the
// offset indexing), one row, and UMT5's 512 tokens; every row of the result sums to one.
TEST_F(CudaOps, SoftmaxRelativeBiasMatchesReference) {
  for (auto [heads, lq, lk] : {std::tuple<int64_t, int64_t, int64_t>{3, 5, 7}, {2, 1, 40}, {8, 512, 512}}) {
    SCOPED_TRACE("heads " + std::to_string(heads) + " lq " + std::to_string(lq) + " lk " + std::to_string(lk));
    const HostBuffer want_b = Random(rng_, static_cast<size_t>(heads * lq * lk), -6.0f, 6.0f);
    const HostBuffer got_b(want_b.size());
    std::copy(want_b.data(), want_b.data() + want_b.size(), got_b.data());
    const HostBuffer bias = Random(rng_, static_cast<size_t>(heads * (lq + lk - 1)), -4.0f, 4.0f);
    Tensor want = want_b.view({heads, lq, lk}), got = got_b.view({heads, lq, lk});
    const Tensor bv = bias.view({heads, lq + lk - 1});
    ref_.softmax_relative_bias(want, bv);
    DS_MIRROR(ds, *cuda_, got_b);
    DS_MIRROR(db, *cuda_, bias);
    Tensor dsv = ds(got);
    cuda_->softmax_relative_bias(dsv, db(bv));
    const Status s = ds.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(got_b.view({heads * lq, lk}), want_b.view({heads * lq, lk}), kF32Rtol));
    for (int64_t r = 0; r < heads * lq; ++r) {
      double sum = 0;
      for (int64_t j = 0; j < lk; ++j) sum += got_b.data()[r * lk + j];
      ASSERT_NEAR(sum, 1.0, 1e-4) << "row " << r;
    }
  }
}

// ---- rope --------------------------------------------------------------------------------------

// q/k preparation in one pass: RMSNorm over the full width, then RoPE per head. Shapes the fused
// kernel takes (tokens in wider rows, 16-byte aligned) and ones that fall back to the two kernels
// (dh not a multiple of 4; rows 4 bytes apart from alignment).
TEST_F(CudaOps, RmsNormRopeMatchesReference) {
  for (auto [n, heads, dh, pad] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 4, 0},
                                   {77, 12, 128, 2 * 12 * 128},
                                   {33, 3, 64, 8},
                                   {20, 3, 6, 0},
                                   {10, 2, 64, 3}}) {
    SCOPED_TRACE("n " + std::to_string(n) + " heads " + std::to_string(heads) + " dh " + std::to_string(dh) + " pad " +
                 std::to_string(pad));
    const int64_t d = heads * dh, row = d + pad;
    const HostBuffer want_b = Random(rng_, static_cast<size_t>(n * row), -2.0f, 2.0f);
    const HostBuffer got_b(want_b.size());
    std::copy(want_b.data(), want_b.data() + want_b.size(), got_b.data());
    const HostBuffer wb = Random(rng_, static_cast<size_t>(d));
    const RopeTables tables = RandomRopeTables(rng_, n, dh / 2);
    const HostBuffer &cb = tables.cos, &sb = tables.sin;
    const Tensor cosv = cb.view({n, dh / 2}), sinv = sb.view({n, dh / 2});
    // The reference as two ops: the norm over the full width, the rotation per head.
    Tensor want = Strided(want_b.data(), {n, d}, row);
    ref_.rms_norm(want, wb.view({d}), 1e-6f);
    Tensor want_heads = Strided(want_b.data(), {n, heads, dh}, row);
    ref_.rope(want_heads, cosv, sinv);
    Tensor got = Strided(got_b.data(), {n, d}, row);
    DS_MIRROR(dx, *cuda_, got_b);
    DS_MIRROR(dw, *cuda_, wb);
    DS_MIRROR(dc, *cuda_, cb);
    DS_MIRROR(ds, *cuda_, sb);
    Tensor dxv = dx(got);
    cuda_->rms_norm_rope(dxv, dw(wb.view({d})), 1e-6f, dc(cosv), ds(sinv), heads);
    const Status s = dx.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(got, want, kF32Rtol));
    for (size_t i = 0; i < got_b.size(); ++i) {  // the padding between tokens is untouched
      if (static_cast<int64_t>(i) % row >= d) {
        ASSERT_EQ(got_b.data()[i], want_b.data()[i]) << i;
      }
    }
  }
}

// The q/k norms on the BF16 rows the engine keeps on a GPU: q as the first columns of a BF16
// [n, 3·d] buffer, normalised over its full width (the cross-attention's q) or normalised and
// rotated (self-attention); f32 inside, rounded once, so within bf16's rounding of the reference.
// Widths that take each register-resident kernel (64: 4 vectors a lane, 1000: 8 with a partial
// last group, 1536: 12) and one past them (2048: the streaming kernel).
TEST_F(CudaOps, RmsNormsOnBf16Rows) {
  for (auto [heads, dh] : {std::pair<int64_t, int64_t>{12, 128}, {2, 500}, {1, 64}, {16, 128}}) {
    SCOPED_TRACE("heads " + std::to_string(heads) + " dh " + std::to_string(dh));
    CheckRmsNormsOnBf16Rows(heads, dh);
  }
}

void CudaOps::CheckRmsNormsOnBf16Rows(int64_t heads, int64_t dh) {
  const int64_t n = 40, d = heads * dh;
  const HostBuffer xf = test::Bf16Rounded(Random(rng_, static_cast<size_t>(n * 3 * d), -2.0f, 2.0f));
  std::vector<uint16_t> bits(xf.size());
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = FloatToBFloat16(xf.data()[i]);
  const HostBuffer wb = Random(rng_, static_cast<size_t>(d));
  const RopeTables tables = RandomRopeTables(rng_, n, dh / 2);
  const HostBuffer &cb = tables.cos, &sb = tables.sin;
  const Tensor cosv = cb.view({n, dh / 2}), sinv = sb.view({n, dh / 2});
  for (bool rope : {false, true}) {
    SCOPED_TRACE(rope ? "rms_norm_rope" : "rms_norm");
    const HostBuffer want_b(static_cast<size_t>(n * d));
    for (int64_t r = 0; r < n; ++r) std::copy_n(xf.data() + r * 3 * d, d, want_b.data() + r * d);
    Tensor want = want_b.view({n, d});
    if (rope) {
      ref_.rms_norm_rope(want, wb.view({d}), 1e-6f, cosv, sinv, heads);
    } else {
      ref_.rms_norm(want, wb.view({d}), 1e-6f);
    }
    auto buf = cuda_->NewBuffer(DType::kBF16, {n, 3 * d});
    ASSERT_TRUE(buf.ok());
    ASSERT_TRUE(cuda_->CopyToBackend(Tensor::View(bits.data(), DType::kBF16, {n, 3 * d}), buf->tensor).ok());
    Tensor q = buf->tensor;  // columns [0, d) of each row
    q.shape[1] = d;
    DS_MIRROR(dw, *cuda_, wb);
    DS_MIRROR(dc, *cuda_, cb);
    DS_MIRROR(ds, *cuda_, sb);
    if (rope) {
      cuda_->rms_norm_rope(q, dw(wb.view({d})), 1e-6f, dc(cosv), ds(sinv), heads);
    } else {
      cuda_->rms_norm(q, dw(wb.view({d})), 1e-6f);
    }
    std::vector<uint16_t> out(bits.size());
    ASSERT_TRUE(cuda_->CopyToHost(buf->tensor, Tensor::View(out.data(), DType::kBF16, {n, 3 * d})).ok());
    const Status s = cuda_->Synchronize();
    ASSERT_TRUE(s.ok()) << s.message();
    const HostBuffer got_b(static_cast<size_t>(n * d));
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t j = 0; j < 3 * d; ++j) {
        const uint16_t v = out[static_cast<size_t>(r * 3 * d + j)];
        if (j < d) {
          got_b.data()[r * d + j] = BFloat16ToFloat(v);
        } else {
          ASSERT_EQ(v, bits[static_cast<size_t>(r * 3 * d + j)]) << "k/v columns are untouched";
        }
      }
    }
    EXPECT_TRUE(AllClose(got_b.view({n, d}), want, 4e-3));
  }
}

TEST_F(CudaOps, RopeMatchesReference) {
  for (auto [n, heads, dh, pad] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 2, 0}, {60, 12, 128, 2 * 12 * 128}, {33, 3, 64, 7}}) {
    SCOPED_TRACE("n " + std::to_string(n) + " heads " + std::to_string(heads) + " dh " + std::to_string(dh));
    const int64_t row = heads * dh + pad;
    const HostBuffer want_b = Random(rng_, static_cast<size_t>(n * row));
    const HostBuffer got_b(want_b.size());
    std::copy(want_b.data(), want_b.data() + want_b.size(), got_b.data());
    const RopeTables tables = RandomRopeTables(rng_, n, dh / 2);
    const HostBuffer &cb = tables.cos, &sb = tables.sin;
    Tensor want = Strided(want_b.data(), {n, heads, dh}, row), got = Strided(got_b.data(), {n, heads, dh}, row);
    const Tensor cosv = cb.view({n, dh / 2}), sinv = sb.view({n, dh / 2});
    ref_.rope(want, cosv, sinv);
    DS_MIRROR(dx, *cuda_, got_b);
    DS_MIRROR(dc, *cuda_, cb);
    DS_MIRROR(ds, *cuda_, sb);
    Tensor dxv = dx(got);
    cuda_->rope(dxv, dc(cosv), ds(sinv));
    const Status s = dx.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(got, want, kF32Rtol));
  }
}

// ---- conv3x3 and upsampling --------------------------------------------------------------------

TEST_F(CudaOps, Conv3x3MatchesReference) {
  CudaOptions o = DefaultOptions();
  o.tf32 = false;
  auto f32 = Make(o);
  ASSERT_TRUE(f32);
  for (auto [c_in, h, w, c_out] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {8, 9, 13, 5}, {32, 16, 16, 16}, {3, 40, 24, 64}}) {
    for (bool tf32 : {true, false}) {
      SCOPED_TRACE("c " + std::to_string(c_in) + " h " + std::to_string(h) + " w " + std::to_string(w) + " o " +
                   std::to_string(c_out) + (tf32 ? " tf32" : " f32"));
      CudaBackend& be = tf32 ? *cuda_ : *f32;
      const HostBuffer xb = Random(rng_, static_cast<size_t>(c_in * h * w));
      const HostBuffer wb = Random(rng_, static_cast<size_t>(c_out * c_in * 9)),
                       bb = Random(rng_, static_cast<size_t>(c_out));
      const HostBuffer want_b = Poisoned(static_cast<size_t>(c_out * h * w)), got_b = Poisoned(want_b.size());
      const Tensor x = xb.view({c_in, h, w}), wt = wb.view({c_out, c_in, 3, 3}), b = bb.view({c_out});
      Tensor want = want_b.view({c_out, h, w}), got = got_b.view({c_out, h, w});
      ref_.conv3x3(x, wt, b, want);
      DS_MIRROR(dx, be, xb);
      DS_MIRROR(dw, be, wb);
      DS_MIRROR(db, be, bb);
      DS_MIRROR(dy, be, got_b);
      Tensor dyv = dy(got);
      be.conv3x3(dx(x), dw(wt), db(b), dyv);
      const Status s = dy.Fetch();
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_TRUE(AllClose(got, want, tf32 ? kTf32Rtol : kF32Rtol));
    }
  }
}

// A VAE-sized layer: 288 input channels (a 3-frame history of 96) at 256 x 384 pixels make a 1 GB
// im2col matrix, built and multiplied in 256 MB bands of pixels.
TEST_F(CudaOps, Conv3x3InPixelBands) {
  const int64_t c = 288, h = 256, w = 384, o = 8;
  const HostBuffer xb = Random(rng_, static_cast<size_t>(c * h * w)), wb = Random(rng_, static_cast<size_t>(o * c * 9));
  const HostBuffer bb = Random(rng_, static_cast<size_t>(o));
  const HostBuffer want_b = Poisoned(static_cast<size_t>(o * h * w)), got_b = Poisoned(static_cast<size_t>(o * h * w));
  Tensor want = want_b.view({o, h, w}), got = got_b.view({o, h, w});
  ref_.conv3x3(xb.view({c, h, w}), wb.view({o, c, 3, 3}), bb.view({o}), want);
  DS_MIRROR(dx, *cuda_, xb);
  DS_MIRROR(dw, *cuda_, wb);
  DS_MIRROR(db, *cuda_, bb);
  DS_MIRROR(dy, *cuda_, got_b);
  Tensor dy_view = dy(got);
  cuda_->conv3x3(dx(xb.view({c, h, w})), dw(wb.view({o, c, 3, 3})), db(bb.view({o})), dy_view);
  const Status s = dy.Fetch();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(AllClose(got, want, kTf32Rtol));
}

// A strided output goes through the kernel's scratch-and-copy path.
TEST_F(CudaOps, Conv3x3IntoStridedOutput) {
  const int64_t c_in = 4, h = 6, w = 5, c_out = 3, pad = 2;
  const HostBuffer xb = Random(rng_, static_cast<size_t>(c_in * h * w));
  const HostBuffer wb = Random(rng_, static_cast<size_t>(c_out * c_in * 9)),
                   bb = Random(rng_, static_cast<size_t>(c_out));
  const HostBuffer want_b = Poisoned(static_cast<size_t>(c_out * h * w));
  const HostBuffer got_b = Poisoned(static_cast<size_t>(c_out * h * (w + pad)));
  const Tensor x = xb.view({c_in, h, w}), wt = wb.view({c_out, c_in, 3, 3}), b = bb.view({c_out});
  Tensor want = want_b.view({c_out, h, w});
  Tensor got = Tensor::View(got_b.data(), DType::kF32, {c_out, h, w});
  got.strides[1] = (w + pad) * 4;
  got.strides[0] = h * (w + pad) * 4;
  ref_.conv3x3(x, wt, b, want);
  DS_MIRROR(dx, *cuda_, xb);
  DS_MIRROR(dw, *cuda_, wb);
  DS_MIRROR(db, *cuda_, bb);
  DS_MIRROR(dy, *cuda_, got_b);
  Tensor dyv = dy(got);
  cuda_->conv3x3(dx(x), dw(wt), db(b), dyv);
  const Status s = dy.Fetch();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(AllClose(got, want, kTf32Rtol));
  EXPECT_TRUE(UntouchedOutside(got_b, got));
}

TEST_F(CudaOps, UpsampleMatchesReference) {
  for (auto [c, h, w] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 5, 7}, {16, 32, 48}}) {
    const HostBuffer xb = Random(rng_, static_cast<size_t>(c * h * w));
    const HostBuffer want_b = Poisoned(static_cast<size_t>(c * 4 * h * w)), got_b = Poisoned(want_b.size());
    const Tensor x = xb.view({c, h, w});
    Tensor want = want_b.view({c, 2 * h, 2 * w}), got = got_b.view({c, 2 * h, 2 * w});
    ref_.upsample_nearest2x(x, want);
    DS_MIRROR(dx, *cuda_, xb);
    DS_MIRROR(dy, *cuda_, got_b);
    Tensor dyv = dy(got);
    cuda_->upsample_nearest2x(dx(x), dyv);
    const Status s = dy.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(got, want, 0.0));
  }
}

// ---- host tensors, arena, errors ----------------------------------------------------------------

// Today's engine passes host buffers: the backend stages them and the results land in place, with
// the bytes between strided rows untouched.
TEST_F(CudaOps, HostTensorsAreStaged) {
  const int64_t m = 37, k = 64, n = 48, pad = 3;
  const size_t arena_before = cuda_->arena_used();
  const HostBuffer xb = Random(rng_, static_cast<size_t>(m * k)), wb = Random(rng_, static_cast<size_t>(n * k));
  const HostBuffer want_b = Poisoned(static_cast<size_t>(m * n)), got_b = Poisoned(static_cast<size_t>(m * (n + pad)));
  const Tensor x = xb.view({m, k}), w = wb.view({n, k});
  Tensor want = want_b.view({m, n}), got = Strided(got_b.data(), {m, n}, n + pad);
  ref_.linear(x, w, nullptr, want);
  cuda_->linear(x, w, nullptr, got);
  ref_.gelu_tanh(want);
  cuda_->gelu_tanh(got);
  const Status s = cuda_->Synchronize();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(AllClose(got, want, kTf32Rtol));
  EXPECT_TRUE(UntouchedOutside(got_b, got));
  EXPECT_EQ(cuda_->arena_used(), arena_before);  // the staging scratch went back
}

// Pixel-major ↔ channel-major as the VAE uses it: strided rows, sizes off the 32-wide tiles, a tall
// [pixels, channels] matrix and a wide [channels, pixels] one (more column tiles than grid.y holds).
TEST_F(CudaOps, TransposeMatchesReference) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {37, 5}, {65, 96}, {3000000, 3}, {3, 3000000}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    const int64_t pad = 3;
    const HostBuffer xb = Random(rng_, static_cast<size_t>(rows * (cols + pad)));
    const HostBuffer want_b = Poisoned(static_cast<size_t>(cols * (rows + pad)));
    const HostBuffer got_b = Poisoned(static_cast<size_t>(cols * (rows + pad)));
    const Tensor x = Strided(xb.data(), {rows, cols}, cols + pad);
    Tensor want = Strided(want_b.data(), {cols, rows}, rows + pad),
           got = Strided(got_b.data(), {cols, rows}, rows + pad);
    ref_.transpose(x, want);
    DS_MIRROR(dx, *cuda_, xb);
    DS_MIRROR(dy, *cuda_, got_b);
    Tensor dy_view = dy(got);
    cuda_->transpose(dx(x), dy_view);
    const Status s = dy.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(got, want, 0.0));
    EXPECT_TRUE(UntouchedOutside(got_b, got));
  }
}

// Stored weights widened on the device equal the host's conversion bit for bit (NaN apart), over
// every bit pattern of each type, with and without a scale.
TEST_F(CudaOps, WidensEveryStoredWeightPattern) {
  constexpr int64_t n = 65536;
  std::vector<uint16_t> bits(n);
  for (int64_t i = 0; i < n; ++i) bits[i] = static_cast<uint16_t>(i);
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF8E4M3, DType::kF8E5M2, DType::kF32}) {
    for (float scale : {1.0f, 0.375f}) {
      // Every pattern of the 8- and 16-bit types; for float32, the bf16 patterns shifted up.
      const int64_t count = DTypeSize(dtype) == 1 ? 256 : n;
      std::vector<uint8_t> raw(static_cast<size_t>(count * static_cast<int64_t>(DTypeSize(dtype))));
      for (int64_t i = 0; i < count; ++i) {
        if (DTypeSize(dtype) == 4) {
          const uint32_t wide = static_cast<uint32_t>(bits[i]) << 16 | 0x1234u;
          std::memcpy(raw.data() + 4 * i, &wide, 4);
        } else if (DTypeSize(dtype) == 2) {
          std::memcpy(raw.data() + 2 * i, &bits[i], 2);
        } else {
          raw[i] = static_cast<uint8_t>(i);
        }
      }
      auto src = cuda_->NewBuffer(dtype, {count});
      ASSERT_TRUE(src.ok());
      ASSERT_TRUE(cuda_->CopyToBackend(Tensor::View(raw.data(), dtype, {count}), src->tensor).ok());
      std::vector<float> want(static_cast<size_t>(count));
      WidenToF32(raw.data(), dtype, want.data(), 0, want.size(), scale);
      // Into float32 (bit for bit the host decoder), and into BF16 (that result rounded to nearest
      // even, as on the host: FloatToBFloat16).
      for (DType to : {DType::kF32, DType::kBF16}) {
        auto dst = cuda_->NewBuffer(to, {count});
        ASSERT_TRUE(dst.ok());
        cuda_->widen(src->tensor, dst->tensor, scale);
        std::vector<uint32_t> got(static_cast<size_t>(count), 0xFFFFFFFFu);
        std::vector<uint16_t> got16(static_cast<size_t>(count), 0xFFFF);
        const Status copied = to == DType::kF32
                                  ? cuda_->CopyToHost(dst->tensor, Tensor::View(got.data(), DType::kF32, {count}))
                                  : cuda_->CopyToHost(dst->tensor, Tensor::View(got16.data(), DType::kBF16, {count}));
        ASSERT_TRUE(copied.ok()) << copied.message();
        const Status s = cuda_->Synchronize();
        ASSERT_TRUE(s.ok()) << s.message();
        int mismatches = 0;
        for (int64_t i = 0; i < count; ++i) {
          const float w = want[static_cast<size_t>(i)];
          if (to == DType::kF32) {
            float g;
            std::memcpy(&g, &got[static_cast<size_t>(i)], 4);
            mismatches += std::isnan(w) ? !std::isnan(g) : std::memcmp(&g, &w, 4) != 0;
          } else {
            const uint16_t g = got16[static_cast<size_t>(i)];
            mismatches += std::isnan(w) ? !std::isnan(BFloat16ToFloat(g)) : g != FloatToBFloat16(w);
          }
        }
        EXPECT_EQ(mismatches, 0) << DTypeName(dtype) << " scale " << scale << " into " << DTypeName(to);
      }
    }
  }
}

TEST_F(CudaOps, ArenaAllocatesAndResets) {
  const size_t before = cuda_->arena_used();
  auto a = cuda_->Alloc(DType::kF32, {1000, 3});
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->device, Device::kCuda);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->data) % 256, 0u);
  EXPECT_GE(cuda_->arena_used(), before + 12000);
  auto too_big = cuda_->Alloc(DType::kF32, {static_cast<int64_t>(cuda_->arena_capacity())});
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), Code::kOutOfMemory);
  cuda_->ResetArena();
  EXPECT_EQ(cuda_->arena_used(), before);
}

// An op that cannot run keeps its error; later ops are skipped until Synchronize reports it.
TEST_F(CudaOps, FirstErrorIsKeptUntilSynchronize) {
  CudaOptions o = DefaultOptions();
  o.arena_bytes = size_t{64} << 20;  // the minimum: half of it is the cuBLASLt workspace
  auto small = Make(o);
  ASSERT_TRUE(small);
  const int64_t rows = static_cast<int64_t>(small->arena_capacity() / sizeof(float) / 64 + 1);
  HostBuffer big(static_cast<size_t>(rows * 64));  // more than the arena can stage
  Tensor t = big.view({rows, 64});
  small->silu(t);
  const HostBuffer xb = Random(rng_, 64), before(64);
  std::copy(xb.data(), xb.data() + 64, before.data());
  Tensor x = xb.view({1, 64});
  small->silu(x);  // skipped
  EXPECT_TRUE(AllClose(x, before.view({1, 64}), 0.0));
  const Status s = small->Synchronize();
  EXPECT_EQ(s.code(), Code::kOutOfMemory) << s.message();
  EXPECT_NE(s.message().find("silu"), std::string::npos) << s.message();
  EXPECT_TRUE(small->Synchronize().ok());
  small->silu(x);
  EXPECT_TRUE(small->Synchronize().ok());
  EXPECT_FALSE(AllClose(x, before.view({1, 64}), 1e-3));
}

// ---- patchify / unpatchify ---------------------------------------------------------------------

// A permutation, so exact: the Wan geometry at a small grid and a patch with three different sides,
// both token orders on the way back.
TEST_F(CudaOps, PatchifyAndUnpatchifyMatchReference) {
  struct Case {
    int64_t c, t, h, w;
    std::array<int, 3> p;
  };
  for (const Case& c : {Case{16, 5, 12, 20, {1, 2, 2}}, Case{3, 4, 6, 9, {2, 3, 1}}}) {
    const int64_t n = c.c * c.t * c.h * c.w;
    const int64_t len = c.c * c.p[0] * c.p[1] * c.p[2], tokens = n / len;
    const HostBuffer lb = Random(rng_, static_cast<size_t>(n));
    const HostBuffer want_t = Poisoned(static_cast<size_t>(n)), got_t = Poisoned(static_cast<size_t>(n));
    const Tensor latent = Tensor::View(lb.data(), DType::kF32, {c.c, c.t, c.h, c.w});
    Tensor wt = want_t.view({tokens, len}), gt = got_t.view({tokens, len});
    ref_.patchify(latent, c.p, wt);
    DS_MIRROR(dl, *cuda_, lb);
    DS_MIRROR(dt, *cuda_, got_t);
    Tensor dt_view = dt(gt);
    cuda_->patchify(dl(latent), c.p, dt_view);
    ASSERT_TRUE(dt.Fetch().ok());
    EXPECT_TRUE(AllClose(gt, wt, 0.0));
    for (const bool channels_last : {false, true}) {
      SCOPED_TRACE(channels_last ? "channels last" : "channels first");
      const HostBuffer want_l = Poisoned(static_cast<size_t>(n)), got_l = Poisoned(static_cast<size_t>(n));
      Tensor wl = Tensor::View(want_l.data(), DType::kF32, {c.c, c.t, c.h, c.w});
      Tensor gl = Tensor::View(got_l.data(), DType::kF32, {c.c, c.t, c.h, c.w});
      ref_.unpatchify(lb.view({tokens, len}), c.p, channels_last, wl);
      DS_MIRROR(dgl, *cuda_, got_l);
      Tensor dgl_view = dgl(gl);
      cuda_->unpatchify(dl(lb.view({tokens, len})), c.p, channels_last, dgl_view);
      ASSERT_TRUE(dgl.Fetch().ok());
      EXPECT_TRUE(AllClose(want_l.view({n}), got_l.view({n}), 0.0));
    }
  }
}

// ---- frames -------------------------------------------------------------------------------------

// Every format (I420 in both matrices, NV12) at an even and an odd size, samples spread beyond [−1, 1] (clamped),
// and the edges a decoder can produce (±1 exactly, NaN, ±inf): the bytes must equal core/frame.h's, the host
// oracle, exactly.
TEST_F(CudaOps, PlanarToPixelsMatchesTheHostBytes) {
  for (const auto& [w, h] : {std::pair{64, 48}, std::pair{33, 17}}) {
    const HostBuffer pb = Random(rng_, static_cast<size_t>(3 * w * h), -1.3f, 1.3f);
    const float edges[] = {1.0f, -1.0f, std::nanf(""), INFINITY, -INFINITY};
    for (size_t i = 0; i < pb.size(); i += 7) pb.data()[i] = edges[(i / 7) % 5];
    DS_MIRROR(dp, *cuda_, pb);
    const Tensor planar = Tensor::View(pb.data(), DType::kF32, {3, h, w});
    for (const FrameFormat format :
         {FrameFormat{PixelFormat::kRgb}, FrameFormat{PixelFormat::kRgba},
          FrameFormat{PixelFormat::kI420, YuvMatrix::kBt601}, FrameFormat{PixelFormat::kI420, YuvMatrix::kBt709},
          FrameFormat{PixelFormat::kNv12, YuvMatrix::kBt709}}) {
      SCOPED_TRACE(std::string(PixelFormatName(format.pixels)) + " " + YuvMatrixName(format.matrix) + " " +
                   std::to_string(w) + "x" + std::to_string(h));
      const FrameLayout l = LayoutOf(format.pixels, w, h);
      std::vector<uint8_t> want(l.bytes), got(l.bytes, 0xa5);
      PlanarToPixels(pb.data(), w, h, format, want.data());
      auto frame = cuda_->NewBuffer(DType::kU8, {static_cast<int64_t>(l.bytes)});
      ASSERT_TRUE(frame.ok()) << frame.status().message();
      cuda_->planar_to_pixels(dp(planar), format, frame->tensor);
      const Status s =
          cuda_->CopyToHost(frame->tensor, Tensor::View(got.data(), DType::kU8, {static_cast<int64_t>(l.bytes)}));
      ASSERT_TRUE(s.ok()) << s.message();
      size_t differ = 0;
      for (size_t i = 0; i < l.bytes; ++i) differ += got[i] != want[i];
      EXPECT_EQ(differ, 0u) << "of " << l.bytes << " bytes";
    }
  }
}

// ---- linear into a residual ------------------------------------------------------------------

// x += gate · (a·wᵀ + bias) accumulated by the GEMM (cuBLASLt's alpha vector, beta 1): every mix of
// gate and bias, BF16 weights with a BF16 or an F32 a, F32 weights (TF32), and x a strided row
// slice of a wider buffer (the FFN's row chunks write into such rows of the residual); then the
// Wan-1.3B block's shape, aligned as the engine's buffers are, where cuBLASLt is most likely to take
// the gate itself. Which path ran is printed: the comparison holds either way, so a run where
// cuBLASLt never fused says so there.
TEST_F(CudaOps, LinearResidualMatchesLinearThenResidual) {
  struct Shape {
    int64_t m, k, n, x_pad;
    bool all_mixes;
  };
  for (const Shape& shape : {Shape{150, 192, 96, 8, true}, Shape{128, 1536, 1536, 0, false}}) {
    const int64_t m = shape.m, k = shape.k, n = shape.n, x_pad = shape.x_pad;
    for (const bool bf16_w : {true, false}) {
      for (const bool bf16_a : {true, false}) {
        if (bf16_a && !bf16_w) continue;                        // BF16 activations go with BF16 weights only
        if (!shape.all_mixes && !(bf16_w && bf16_a)) continue;  // the engine's mix only
        for (const bool has_gate : {true, false}) {
          for (const bool has_bias : {true, false}) {
            SCOPED_TRACE(std::string(bf16_w ? "bf16 w" : "f32 w") + (bf16_a ? ", bf16 a" : ", f32 a") +
                         (has_gate ? ", gate" : "") + (has_bias ? ", bias" : ""));
            const HostBuffer ab = Random(rng_, static_cast<size_t>(m * k)),
                             wb = Random(rng_, static_cast<size_t>(n * k));
            const HostBuffer bb = Random(rng_, static_cast<size_t>(n)), gb = Random(rng_, static_cast<size_t>(n));
            // x's rows are random, the padding between them NaN (it must stay so).
            const HostBuffer xb = Poisoned(static_cast<size_t>(m * (n + x_pad))),
                             x_rows = Random(rng_, static_cast<size_t>(m * n));
            for (int64_t i = 0; i < m; ++i) std::copy_n(x_rows.data() + i * n, n, xb.data() + i * (n + x_pad));
            const HostBuffer a_rounded = test::Bf16Rounded(ab);
            const HostBuffer& a_used = bf16_w ? a_rounded : ab;
            const test::Bf16Matrix w16 = RoundedToBf16(*cuda_, wb, n, k);
            const test::Bf16Matrix a16 = RoundedToBf16(*cuda_, ab, m, k);
            const HostBuffer want_b(xb.size()), scratch_want(static_cast<size_t>(m * n));
            std::copy(xb.data(), xb.data() + xb.size(), want_b.data());
            const Tensor b = bb.view({n}), g = gb.view({n});
            Tensor want = Strided(want_b.data(), {m, n}, n + x_pad), sw = scratch_want.view({m, n});
            ref_.linear_residual(a_used.view({m, k}), bf16_w ? w16.widened.view({n, k}) : wb.view({n, k}),
                                 has_bias ? &b : nullptr, has_gate ? &g : nullptr, want, sw);

            const HostBuffer scratch_b = Poisoned(static_cast<size_t>(m * n));
            DS_MIRROR(da, *cuda_, ab);
            DS_MIRROR(dw, *cuda_, wb);
            DS_MIRROR(db, *cuda_, bb);
            DS_MIRROR(dg, *cuda_, gb);
            DS_MIRROR(dx, *cuda_, xb);
            DS_MIRROR(dscratch, *cuda_, scratch_b);
            const Tensor db_view = db(b), dg_view = dg(g);
            const Tensor a_dev = bf16_a ? a16.device.tensor : da(ab.view({m, k}));
            const Tensor w_dev = bf16_w ? w16.device.tensor : dw(wb.view({n, k}));
            Tensor got = Strided(xb.data(), {m, n}, n + x_pad);
            Tensor dx_view = dx(got), dscratch_view = dscratch(scratch_b.view({m, n}));
            cuda_->linear_residual(a_dev, w_dev, has_bias ? &db_view : nullptr, has_gate ? &dg_view : nullptr, dx_view,
                                   dscratch_view);
            const Status s = dx.Fetch();
            ASSERT_TRUE(s.ok()) << s.message();
            EXPECT_TRUE(AllClose(got, want, bf16_w ? kBf16OperandsRtol : kTf32Rtol));
            EXPECT_TRUE(UntouchedOutside(xb, got));
          }
        }
      }
    }
  }
  const CudaBackend::LinearResidualPaths paths = cuda_->linear_residual_paths();
  std::printf(
      "[ paths    ] linear_residual: %zu accumulated by cuBLASLt (gate as alpha vector), %zu by linear + "
      "gate_residual\n",
      paths.fused, paths.fallback);
  EXPECT_EQ(paths.fused + paths.fallback, 16u) << "every call is counted once";
}

// Timed plans (Autotune::kAll) against the heuristic's first (kOff), on GEMMs big enough to be
// timed, as the Wan block issues them (BF16 w, f32 x, bias): the same values up to the order of
// the f32 sums, and an accumulating GEMM adds its product once (its timing runs into scratch).
TEST_F(CudaOps, TimedGemmsComputeWhatTheHeuristicsFirstComputes) {
  const int64_t m = 4096, k = 2048, n = 2048;
  const HostBuffer xb = Random(rng_, static_cast<size_t>(m * k)), wb = Random(rng_, static_cast<size_t>(n * k));
  const HostBuffer bb = Random(rng_, static_cast<size_t>(n)), gb = Random(rng_, static_cast<size_t>(n));
  const HostBuffer r0 = Random(rng_, static_cast<size_t>(m * n));
  std::vector<uint16_t> w16(wb.size());
  for (size_t i = 0; i < wb.size(); ++i) w16[i] = FloatToBFloat16(wb.data()[i]);
  const Tensor x = xb.view({m, k}), w = Tensor::View(w16.data(), DType::kBF16, {n, k}), b = bb.view({n}),
               gate = gb.view({n});
  struct Outputs {
    HostBuffer y, gelu, residual, scratch;
    size_t timed = 0;
  };
  auto run = [&](cuda::Autotune mode, Outputs& out) {
    auto be = Make(DefaultOptions());
    ASSERT_TRUE(be);
    ASSERT_TRUE(be->set_gemm_autotune(mode).ok());
    for (HostBuffer* h : {&out.y, &out.gelu, &out.scratch}) *h = HostBuffer(static_cast<size_t>(m * n));
    out.residual = HostBuffer(r0.size());
    std::copy_n(r0.data(), r0.size(), out.residual.data());
    Tensor y = out.y.view({m, n}), gelu = out.gelu.view({m, n}), residual = out.residual.view({m, n}),
           scratch = out.scratch.view({m, n});
    be->linear(x, w, &b, y);  // host tensors: staged through the arena
    be->linear_gelu_tanh(x, w, &b, gelu);
    be->linear_residual(x, w, &b, &gate, residual, scratch);
    const Status s = be->Synchronize();
    ASSERT_TRUE(s.ok()) << s.message();
    out.timed = be->gemm_plans_timed();
  };
  Outputs timed, first;
  run(cuda::Autotune::kAll, timed);
  run(cuda::Autotune::kOff, first);
  EXPECT_GE(timed.timed, 1u) << "no plan was timed: cuBLASLt offered one algorithm each?";
  EXPECT_EQ(first.timed, 0u);
  EXPECT_TRUE(AllClose(timed.y.view({m, n}), first.y.view({m, n}), kBf16OperandsRtol));
  EXPECT_TRUE(AllClose(timed.gelu.view({m, n}), first.gelu.view({m, n}), kBf16OperandsRtol));
  EXPECT_TRUE(AllClose(timed.residual.view({m, n}), first.residual.view({m, n}), kBf16OperandsRtol));
}

// ---- recorded ops (CUDA graphs) ----------------------------------------------------------------

// A block's tail as a model records it: y = silu(x·wᵀ + b) with BF16 w and an F32 x (so linear
// rounds x into arena scratch, whose address the graph keeps), then r += gate·y, then
// r += gate2 ⊙ (y·w2ᵀ + b2) accumulated by the GEMM (linear_residual: the gated bias is made in
// scratch inside the graph) with a gate2 that changes every run, as the Wan blocks' modulation
// does every step. The first run issues the ops, the second captures and launches the graph,
// later ones replay it; new inputs are uploaded before each run and every result is checked
// against the reference.
TEST_F(CudaOps, RecordedOpsReplayOnNewInputs) {
  const int64_t m = 96, k = 128, n = 80;
  const HostBuffer wb = Random(rng_, static_cast<size_t>(n * k)), bb = Random(rng_, static_cast<size_t>(n));
  const HostBuffer gb = Random(rng_, static_cast<size_t>(n));
  const HostBuffer w2b = Random(rng_, static_cast<size_t>(n * n)), b2b = Random(rng_, static_cast<size_t>(n));
  const test::Bf16Matrix w = RoundedToBf16(*cuda_, wb, n, k), w2 = RoundedToBf16(*cuda_, w2b, n, n);
  HostBuffer xb(static_cast<size_t>(m * k)), rb(static_cast<size_t>(m * n)), yb(static_cast<size_t>(m * n));
  HostBuffer g2b(static_cast<size_t>(n)), sb(static_cast<size_t>(m * n));
  DS_MIRROR(dx, *cuda_, xb);
  DS_MIRROR(db, *cuda_, bb);
  DS_MIRROR(dg, *cuda_, gb);
  DS_MIRROR(db2, *cuda_, b2b);
  DS_MIRROR(dg2, *cuda_, g2b);
  DS_MIRROR(dr, *cuda_, rb);
  DS_MIRROR(dy, *cuda_, yb);
  DS_MIRROR(ds, *cuda_, sb);
  const Tensor x = xb.view({m, k}), b = bb.view({n}), g = gb.view({n}), b2 = b2b.view({n}), g2 = g2b.view({n});
  Tensor r = rb.view({m, n}), y = yb.view({m, n});
  const Tensor db_view = db(b), dg_view = dg(g), db2_view = db2(b2), dg2_view = dg2(g2);
  Tensor dr_view = dr(r), dy_view = dy(y), ds_view = ds(sb.view({m, n}));
  auto ops = [&]() -> Status {
    cuda_->linear(dx(x), w.device.tensor, &db_view, dy_view);
    cuda_->silu(dy_view);
    cuda_->gate_residual(dr_view, dg_view, dy_view);
    cuda_->linear_residual(dy_view, w2.device.tensor, &db2_view, &dg2_view, dr_view, ds_view);
    return Status::Ok();
  };
  std::unique_ptr<OpRecording> recording;
  for (int run = 0; run < 5; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    // Run 4: arena memory above the graph's scratch is taken first (and must stay untouched).
    std::unique_ptr<test::DeviceMirror> taken;
    const HostBuffer taken_b = Random(rng_, size_t{1} << 20), taken_copy(taken_b.size());
    std::copy(taken_b.data(), taken_b.data() + taken_b.size(), taken_copy.data());
    if (run == 4) {
      taken = std::make_unique<test::DeviceMirror>(*cuda_, taken_b);
      ASSERT_TRUE(taken->status().ok()) << taken->status().message();
    }
    const HostBuffer new_x = Random(rng_, xb.size()), new_r = Random(rng_, rb.size()),
                     new_g2 = Random(rng_, g2b.size());
    ASSERT_TRUE(cuda_->Upload(new_x.view({m, k}), dx(x)).ok());
    ASSERT_TRUE(cuda_->Upload(new_r.view({m, n}), dr(r)).ok());
    ASSERT_TRUE(cuda_->Upload(new_g2.view({n}), dg2(g2)).ok());
    const HostBuffer want_b(rb.size()), want_y(yb.size()), want_scratch(sb.size());
    std::copy(new_r.data(), new_r.data() + new_r.size(), want_b.data());
    Tensor want = want_b.view({m, n}), wy = want_y.view({m, n}), ws = want_scratch.view({m, n});
    ref_.linear(test::Bf16Rounded(new_x).view({m, k}), w.widened.view({n, k}), &b, wy);
    ref_.silu(wy);
    ref_.gate_residual(want, g, wy);

    const Status ran = cuda_->RunRecorded(recording, ops);
    ASSERT_TRUE(ran.ok()) << ran.message();
    const Status s = dr.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    // The last GEMM's reference takes the device's y (checked against the reference's here), so
    // that a y a rounding apart from the reference's cannot round to another bf16.
    ASSERT_TRUE(dy.Fetch().ok());
    EXPECT_TRUE(AllClose(y, wy, kBf16OperandsRtol));
    const Tensor new_g2_view = new_g2.view({n});
    ref_.linear_residual(test::Bf16Rounded(yb).view({m, n}), w2.widened.view({n, n}), &b2, &new_g2_view, want, ws);
    EXPECT_TRUE(AllClose(r, want, kBf16OperandsRtol));
    ASSERT_TRUE(recording);
    EXPECT_EQ(recording->replays(), run >= 1) << "the first run issues the ops, the second captures the graph";
    if (taken) {
      ASSERT_TRUE(taken->Fetch().ok());
      EXPECT_TRUE(AllClose(taken_b.view({1 << 20}), taken_copy.view({1 << 20}), 0.0))
          << "the graph wrote its scratch over arena memory allocated after the capture";
    }
  }
}

// Autotune: by default only the plans a recording's ops make time their candidates (they
// replay every step); kOff times none, kAll every one. The results of timed plans are checked by
// the tests above (this one counts).
TEST_F(CudaOps, GemmPlansAreTimedAsTheAutotuneModeSays) {
  const int64_t k = 2048, n = 2048;  // GEMMs big enough to be timed (over GemmTuning::kMinMs)
  const HostBuffer wb = Random(rng_, static_cast<size_t>(n * k)), xb = Random(rng_, static_cast<size_t>(4096 * k));
  HostBuffer yb(static_cast<size_t>(4096 * n));
  DS_MIRROR(dw, *cuda_, wb);
  DS_MIRROR(dx, *cuda_, xb);
  DS_MIRROR(dy, *cuda_, yb);
  const Tensor w = dw(wb.view({n, k}));
  // A linear of m rows (each m its own plan).
  auto linear = [&](int64_t m) {
    Tensor y = dy(yb.view({m, n}));
    cuda_->linear(dx(xb.view({m, k})), w, nullptr, y);
    return Status::Ok();
  };
  auto synced = [&] {
    const Status s = cuda_->Synchronize();
    EXPECT_TRUE(s.ok()) << s.message();
  };
  ASSERT_TRUE(cuda_->set_gemm_autotune(cuda::Autotune::kRecorded).ok());  // the default, whatever the environment
  ASSERT_TRUE(linear(2048).ok());
  synced();
  EXPECT_EQ(cuda_->gemm_plans_timed(), 0u) << "a plan made outside a recording was timed";
  std::unique_ptr<OpRecording> recording;
  ASSERT_TRUE(cuda_->RunRecorded(recording, [&] { return linear(3072); }).ok());
  synced();
  EXPECT_EQ(cuda_->gemm_plans_timed(), 1u) << "the recording's plan was not timed (cuBLASLt offered one algorithm?)";

  ASSERT_TRUE(cuda_->set_gemm_autotune(cuda::Autotune::kOff).ok());
  recording.reset();
  ASSERT_TRUE(cuda_->RunRecorded(recording, [&] { return linear(3072); }).ok());
  synced();
  EXPECT_EQ(cuda_->gemm_plans_timed(), 0u);

  ASSERT_TRUE(cuda_->set_gemm_autotune(cuda::Autotune::kAll).ok());
  ASSERT_TRUE(linear(2048).ok());
  ASSERT_TRUE(linear(4096).ok());
  synced();
  EXPECT_EQ(cuda_->gemm_plans_timed(), 2u);
}

// A timed choice is written to the tuning cache and read back by the next backend on this machine
// (same key: device, cuBLASLt version, plan), which then times nothing and computes the same
// bytes; an entry that is not a whole algorithm is timed again.
TEST_F(CudaOps, TimedGemmChoicesAreReadBackFromTheCache) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("ds_gemm_tuning_" + std::to_string(getpid()) + ".txt")).string();
  std::remove(path.c_str());
  // Big enough to be timed (over GemmTuning::kMinMs on any GPU this runs on).
  const int64_t m = 4096, k = 2048, n = 2048;
  const HostBuffer wb = Random(rng_, static_cast<size_t>(n * k)), xb = Random(rng_, static_cast<size_t>(m * k));
  // One backend's linear into yb, and how its plan was chosen.
  auto run = [&](const HostBuffer& yb, size_t* timed, size_t* cached) {
    CudaOptions o = DefaultOptions();
    o.tuning_cache = path;
    auto be = Make(o);
    ASSERT_TRUE(be);
    EXPECT_TRUE(be->set_gemm_autotune(cuda::Autotune::kAll).ok());
    DS_MIRROR(dw, *be, wb);
    DS_MIRROR(dx, *be, xb);
    DS_MIRROR(dy, *be, yb);
    Tensor y = dy(yb.view({m, n}));
    be->linear(dx(xb.view({m, k})), dw(wb.view({n, k})), nullptr, y);
    const Status s = dy.Fetch();
    EXPECT_TRUE(s.ok()) << s.message();
    *timed = be->gemm_plans_timed();
    *cached = be->gemm_plans_cached();
  };
  size_t timed = 0, cached = 0;
  const HostBuffer first(static_cast<size_t>(m * n)), second(first.size()), third(first.size());
  run(first, &timed, &cached);
  EXPECT_EQ(timed, 1u) << "cuBLASLt offered one algorithm, or the GEMM took under GemmTuning::kMinMs?";
  EXPECT_EQ(cached, 0u);
  run(second, &timed, &cached);
  EXPECT_EQ(timed, 0u);
  EXPECT_EQ(cached, 1u);
  EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0)
      << "the cached algorithm computed other bytes than the timed one";
  // The entry cut short (the key kept): not an algorithm of this library, and the plan is timed.
  std::string text;
  {
    std::ifstream in(path);
    std::stringstream all;
    all << in.rdbuf();
    text = all.str();
  }
  const size_t line = text.find('\n') + 1, gap = text.find(' ', line);
  ASSERT_NE(gap, std::string::npos) << text;
  text.erase(gap + 1, 16);  // 8 of the bytes
  std::ofstream(path, std::ios::trunc) << text;
  run(third, &timed, &cached);
  EXPECT_EQ(timed, 1u);
  EXPECT_EQ(cached, 0u);
  std::remove(path.c_str());
}

// An op with a host output waits for the stream, which a capture cannot hold: the recording falls
// back to issuing the ops, with the same results, and leaves no error behind (runs 1 and 2 try a
// capture, run 3 no longer does).
TEST_F(CudaOps, RecordingThatCannotBeCapturedIssuesTheOps) {
  const int64_t m = 33, n = 40;
  HostBuffer xb(static_cast<size_t>(m * n)), hb(static_cast<size_t>(m * n));
  DS_MIRROR(dx, *cuda_, xb);
  Tensor x = xb.view({m, n}), h = hb.view({m, n});
  Tensor dx_view = dx(x);
  auto ops = [&]() -> Status {
    cuda_->silu(dx_view);
    cuda_->gelu_tanh(h);  // a host tensor: staged, and copied back with a wait
    return Status::Ok();
  };
  std::unique_ptr<OpRecording> recording;
  for (int run = 0; run < 4; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    const HostBuffer new_x = Random(rng_, xb.size()), new_h = Random(rng_, hb.size());
    ASSERT_TRUE(cuda_->Upload(new_x.view({m, n}), dx_view).ok());
    std::copy(new_h.data(), new_h.data() + new_h.size(), hb.data());
    const HostBuffer want_x(xb.size()), want_h(hb.size());
    std::copy(new_x.data(), new_x.data() + new_x.size(), want_x.data());
    std::copy(new_h.data(), new_h.data() + new_h.size(), want_h.data());
    Tensor wx = want_x.view({m, n}), wh = want_h.view({m, n});
    ref_.silu(wx);
    ref_.gelu_tanh(wh);
    const Status ran = cuda_->RunRecorded(recording, ops);
    ASSERT_TRUE(ran.ok()) << ran.message();
    const Status s = dx.Fetch();
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(AllClose(x, wx, kF32Rtol));
    EXPECT_TRUE(AllClose(h, wh, kF32Rtol));
    ASSERT_TRUE(recording);
    EXPECT_FALSE(recording->replays());
  }
}

}  // namespace
}  // namespace ds
