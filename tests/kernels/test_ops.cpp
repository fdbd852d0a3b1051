// CpuBackend vs ReferenceBackend for every op except attention (see test_attention.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <tuple>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/reference_backend.h"
#include "tests/kernels/kernel_test_util.h"

namespace ds {
namespace {

using test::AllClose;
using test::Poison;
using test::Poisoned;
using test::Random;
using test::Strided;
using test::UntouchedOutside;

constexpr double kRtol = 1e-5;

class CpuOps : public ::testing::Test {
 protected:
  ReferenceBackend ref_;
  CpuBackend cpu_{2};
  std::mt19937 rng_ = test::TestRng();
};

// ---- linear ----------------------------------------------------------------------------------

struct LinearShape {
  int64_t m, k, n;
  bool bias;
  int64_t x_pad, y_pad;  // extra floats per row: x and y as slices of wider buffers
};

void PrintTo(const LinearShape& s, std::ostream* os) {
  *os << "m " << s.m << " k " << s.k << " n " << s.n << (s.bias ? " bias" : "") << " pads " << s.x_pad << "/"
      << s.y_pad;
}

class Linear : public CpuOps, public ::testing::WithParamInterface<LinearShape> {};

TEST_P(Linear, MatchesReference) {
  const auto [m, k, n, with_bias, x_pad, y_pad] = GetParam();
  const HostBuffer xb = Random(rng_, static_cast<size_t>(m * (k + x_pad)));
  const HostBuffer wb = Random(rng_, static_cast<size_t>(n * k));
  const HostBuffer bb = Random(rng_, static_cast<size_t>(n));
  const Tensor x = Strided(xb.data(), {m, k}, k + x_pad), w = wb.view({n, k}), b = bb.view({n});
  const HostBuffer want_b = Poisoned(static_cast<size_t>(m * n));
  const HostBuffer got_b = Poisoned(static_cast<size_t>(m * (n + y_pad)));
  Tensor want = want_b.view({m, n}), got = Strided(got_b.data(), {m, n}, n + y_pad);
  ref_.linear(x, w, with_bias ? &b : nullptr, want);
  cpu_.linear(x, w, with_bias ? &b : nullptr, got);
  EXPECT_TRUE(AllClose(got, want, kRtol));
  EXPECT_TRUE(UntouchedOutside(got_b, got));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Linear,
                         ::testing::Values(LinearShape{1, 1, 1, true, 0, 0}, LinearShape{1, 17, 9, false, 0, 0},
                                           LinearShape{7, 13, 5, true, 3, 2}, LinearShape{144, 192, 576, true, 0, 0},
                                           LinearShape{129, 64, 200, false, 128, 64},
                                           LinearShape{33, 1536, 70, true, 0, 5},
                                           // Thread blocks with ragged last edges, in M and N.
                                           LinearShape{33, 2048, 17, true, 0, 0},
                                           LinearShape{17, 2048, 33, false, 0, 0}));

// ---- norms -----------------------------------------------------------------------------------

class Norms : public CpuOps, public ::testing::WithParamInterface<std::tuple<int64_t, int64_t>> {
 protected:
  // Rows with a nonzero mean and a row stride wider than the row.
  HostBuffer Input(int64_t m, int64_t d) { return Random(rng_, static_cast<size_t>(m * (d + 3)), -1.0f, 3.0f); }
};

TEST_P(Norms, LayerNormMatchesReference) {
  const auto [m, d] = GetParam();
  const HostBuffer xb = Input(m, d), wb = Random(rng_, d), bb = Random(rng_, d);
  const Tensor x = Strided(xb.data(), {m, d}, d + 3), w = wb.view({d}), b = bb.view({d});
  const HostBuffer want_b = Poisoned(m * d), got_b = Poisoned(m * d);
  Tensor want = want_b.view({m, d}), got = got_b.view({m, d});
  using Affine = std::pair<const Tensor*, const Tensor*>;
  for (const auto& [weight, bias] :
       {Affine{&w, &b}, Affine{&w, nullptr}, Affine{nullptr, &b}, Affine{nullptr, nullptr}}) {
    Poison(want_b);
    Poison(got_b);
    ref_.layer_norm(x, weight, bias, 1e-6f, want);
    cpu_.layer_norm(x, weight, bias, 1e-6f, got);
    EXPECT_TRUE(AllClose(got, want, kRtol)) << "weight " << !!weight << " bias " << !!bias;
  }
}

TEST_P(Norms, LayerNormModulateMatchesReference) {
  const auto [m, d] = GetParam();
  const HostBuffer xb = Input(m, d), shift_b = Random(rng_, d), scale_b = Random(rng_, d);
  const Tensor x = Strided(xb.data(), {m, d}, d + 3);
  const HostBuffer want_b = Poisoned(m * d), got_b = Poisoned(m * d);
  Tensor want = want_b.view({m, d}), got = got_b.view({m, d});
  ref_.layer_norm_modulate(x, shift_b.view({d}), scale_b.view({d}), 1e-6f, want);
  cpu_.layer_norm_modulate(x, shift_b.view({d}), scale_b.view({d}), 1e-6f, got);
  EXPECT_TRUE(AllClose(got, want, kRtol));
}

TEST_P(Norms, RmsNormMatchesReference) {
  const auto [m, d] = GetParam();
  const HostBuffer xb = Input(m, d), wb = Random(rng_, d, 0.5f, 1.5f);
  const HostBuffer yb(xb.size());
  std::copy_n(xb.data(), xb.size(), yb.data());
  Tensor want = Strided(xb.data(), {m, d}, d + 3), got = Strided(yb.data(), {m, d}, d + 3);
  ref_.rms_norm(want, wb.view({d}), 1e-6f);
  cpu_.rms_norm(got, wb.view({d}), 1e-6f);
  EXPECT_TRUE(AllClose(got, want, kRtol));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Norms,
                         ::testing::Values(std::tuple{1, 7}, std::tuple{5, 64}, std::tuple{130, 33},
                                           std::tuple{64, 1536}));

// q/k norms run per head on the q slice of a fused [N, 3, H, dh] buffer: leading dims that do not
// collapse into one stride.
TEST_F(CpuOps, RmsNormOnFusedQkvSlice) {
  const int64_t n = 37, heads = 3, dh = 32;
  const HostBuffer ref_b = Random(rng_, n * 3 * heads * dh), cpu_b(ref_b.size());
  std::copy_n(ref_b.data(), ref_b.size(), cpu_b.data());
  const HostBuffer wb = Random(rng_, dh);
  Tensor want = Strided(ref_b.data(), {n, heads, dh}, 3 * heads * dh);
  Tensor got = Strided(cpu_b.data(), {n, heads, dh}, 3 * heads * dh);
  ref_.rms_norm(want, wb.view({dh}), 1e-6f);
  cpu_.rms_norm(got, wb.view({dh}), 1e-6f);
  EXPECT_TRUE(AllClose(cpu_b.view({n * 3 * heads * dh}), ref_b.view({n * 3 * heads * dh}), kRtol));
}

// ---- element-wise ----------------------------------------------------------------------------

class Elementwise : public CpuOps, public ::testing::WithParamInterface<std::tuple<int64_t, int64_t>> {};

TEST_P(Elementwise, GateResidualAndAddMatchReference) {
  const auto [m, d] = GetParam();
  const HostBuffer xb = Random(rng_, m * (d + 5)), fb = Random(rng_, m * d), gb = Random(rng_, d);
  const HostBuffer yb(xb.size());
  std::copy_n(xb.data(), xb.size(), yb.data());
  Tensor want = Strided(xb.data(), {m, d}, d + 5), got = Strided(yb.data(), {m, d}, d + 5);
  ref_.gate_residual(want, gb.view({d}), fb.view({m, d}));
  cpu_.gate_residual(got, gb.view({d}), fb.view({m, d}));
  EXPECT_TRUE(AllClose(got, want, kRtol));
  ref_.add(want, fb.view({m, d}));
  cpu_.add(got, fb.view({m, d}));
  EXPECT_TRUE(AllClose(got, want, kRtol));
}

TEST_P(Elementwise, ActivationsMatchReference) {
  const auto [m, d] = GetParam();
  for (const bool gelu : {true, false}) {
    const HostBuffer xb = Random(rng_, m * d, -9.0f, 9.0f), yb(xb.size());
    std::copy_n(xb.data(), xb.size(), yb.data());
    Tensor want = xb.view({m, d}), got = yb.view({m, d});
    if (gelu) {
      ref_.gelu_tanh(want);
      cpu_.gelu_tanh(got);
    } else {
      ref_.silu(want);
      cpu_.silu(got);
    }
    EXPECT_TRUE(AllClose(got, want, kRtol)) << (gelu ? "gelu_tanh" : "silu");
  }
}

TEST_P(Elementwise, RopeMatchesReference) {
  const auto [n, dh2] = GetParam();
  const int64_t heads = 3, dh = 2 * dh2, stride = 3 * heads * dh;  // q slice of a fused qkv row
  const HostBuffer xb = Random(rng_, n * stride), yb(xb.size());
  std::copy_n(xb.data(), xb.size(), yb.data());
  const HostBuffer angles = Random(rng_, n * dh2, -3.2f, 3.2f), cb(angles.size()), sb(angles.size());
  for (size_t i = 0; i < angles.size(); ++i) {
    cb.data()[i] = std::cos(angles.data()[i]);
    sb.data()[i] = std::sin(angles.data()[i]);
  }
  Tensor want = Strided(xb.data(), {n, heads, dh}, stride), got = Strided(yb.data(), {n, heads, dh}, stride);
  ref_.rope(want, cb.view({n, dh2}), sb.view({n, dh2}));
  cpu_.rope(got, cb.view({n, dh2}), sb.view({n, dh2}));
  EXPECT_TRUE(AllClose(yb.view({n * stride}), xb.view({n * stride}), kRtol));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Elementwise,
                         ::testing::Values(std::tuple{1, 1}, std::tuple{3, 7}, std::tuple{129, 16},
                                           std::tuple{512, 192}));

// ---- conv / upsample -------------------------------------------------------------------------

struct ConvShape {
  int64_t c, h, w, o;
};

void PrintTo(const ConvShape& s, std::ostream* os) {
  *os << "c " << s.c << " h " << s.h << " w " << s.w << " o " << s.o;
}

class Conv : public CpuOps, public ::testing::WithParamInterface<ConvShape> {};

TEST_P(Conv, Conv3x3MatchesReference) {
  const auto [c, h, w, o] = GetParam();
  const HostBuffer xb = Random(rng_, c * h * w), wb = Random(rng_, o * c * 9), bb = Random(rng_, o);
  const HostBuffer want_b = Poisoned(o * h * w), got_b = Poisoned(o * h * w);
  Tensor want = want_b.view({o, h, w}), got = got_b.view({o, h, w});
  ref_.conv3x3(xb.view({c, h, w}), wb.view({o, c, 3, 3}), bb.view({o}), want);
  cpu_.conv3x3(xb.view({c, h, w}), wb.view({o, c, 3, 3}), bb.view({o}), got);
  EXPECT_TRUE(AllClose(got, want, kRtol));
}

TEST_P(Conv, UpsampleMatchesReference) {
  const auto [c, h, w, o] = GetParam();
  const HostBuffer xb = Random(rng_, c * h * w);
  const HostBuffer want_b = Poisoned(c * 4 * h * w), got_b = Poisoned(c * 4 * h * w);
  Tensor want = want_b.view({c, 2 * h, 2 * w}), got = got_b.view({c, 2 * h, 2 * w});
  ref_.upsample_nearest2x(xb.view({c, h, w}), want);
  cpu_.upsample_nearest2x(xb.view({c, h, w}), got);
  EXPECT_TRUE(AllClose(got, want, 0.0));
}

// Strided rows on both sides, shapes that are not multiples of the 32-wide tiles.
TEST_P(Conv, TransposeMatchesReference) {
  const auto [c, h, w, o] = GetParam();
  const int64_t rows = h * w, cols = c, pad = 3;
  const HostBuffer xb = Random(rng_, rows * (cols + pad));
  const HostBuffer want_b = Poisoned(cols * (rows + pad)), got_b = Poisoned(cols * (rows + pad));
  const Tensor x = test::Strided(xb.data(), {rows, cols}, cols + pad);
  Tensor want = test::Strided(want_b.data(), {cols, rows}, rows + pad);
  Tensor got = test::Strided(got_b.data(), {cols, rows}, rows + pad);
  ref_.transpose(x, want);
  cpu_.transpose(x, got);
  EXPECT_TRUE(AllClose(got, want, 0.0));
  for (int64_t r = 0; r < rows; r += 7)
    for (int64_t k = 0; k < cols; ++k) EXPECT_EQ(want.f32()[k * (rows + pad) + r], xb.data()[r * (cols + pad) + k]);
}

// The last shape needs several im2col bands.
INSTANTIATE_TEST_SUITE_P(Shapes, Conv,
                         ::testing::Values(ConvShape{1, 1, 1, 1}, ConvShape{3, 7, 5, 4}, ConvShape{16, 33, 17, 8},
                                           ConvShape{64, 64, 64, 16}));

// ---- threads ---------------------------------------------------------------------------------

// One and two threads split the work differently; results must agree.
TEST_F(CpuOps, OneAndTwoThreadsAgree) {
  const int64_t m = 300, d = 384, c = 16, h = 32;
  const HostBuffer xb = Random(rng_, m * d), wb = Random(rng_, d * d), bb = Random(rng_, d);
  const HostBuffer sb = Random(rng_, d), cwb = Random(rng_, c * c * 9);
  const Tensor x = xb.view({m, d}), w = wb.view({d, d}), b = bb.view({d}), s = sb.view({d});
  const HostBuffer hidden = Poisoned(m * d);
  HostBuffer out[2] = {Poisoned(m * d), Poisoned(m * d)};
  HostBuffer conv_out[2] = {Poisoned(c * h * h), Poisoned(c * h * h)};
  for (const int threads : {1, 2}) {
    cpu_.set_threads(threads);
    ASSERT_EQ(cpu_.threads(), threads);
    Tensor hv = hidden.view({m, d}), y = out[threads - 1].view({m, d});
    cpu_.layer_norm_modulate(x, b, s, 1e-6f, hv);
    cpu_.linear(hv, w, &b, y);
    cpu_.gelu_tanh(y);
    cpu_.gate_residual(y, s, x);
    Tensor cy = conv_out[threads - 1].view({c, h, h});
    cpu_.conv3x3(xb.view({c, h, h}), cwb.view({c, c, 3, 3}), bb.view({c}), cy);
  }
  EXPECT_TRUE(AllClose(out[1].view({m, d}), out[0].view({m, d}), kRtol));
  EXPECT_TRUE(AllClose(conv_out[1].view({c, h, h}), conv_out[0].view({c, h, h}), kRtol));
}

}  // namespace
}  // namespace ds
