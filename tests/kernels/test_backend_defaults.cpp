// The Backend ops with host defaults in core/backend.cpp (what the CPU backends run; the CUDA
// backend overrides each): rms_norm_rope, mul, sub, abs_diff_sums and softmax_relative_bias, each against an
// independent float64 computation from its definition in core/backend.h.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/reference_backend.h"
#include "tests/kernels/kernel_test_util.h"

namespace ds {
namespace {

using test::AllClose;
using test::Random;
using test::Strided;

constexpr double kRtol = 1e-5;

class BackendDefaults : public ::testing::Test {
 protected:
  CpuBackend cpu_{2};
  std::mt19937 rng_ = test::TestRng();
};

// q as the first third of fused [n, 3·H·dh] rows: the norm over H·dh, then pair j of every head
// rotated by angle (t, j); the other two thirds untouched.
TEST_F(BackendDefaults, RmsNormRopeIsTheNormThenTheRotation) {
  constexpr int64_t n = 9, heads = 3, dh = 8, d = heads * dh, row = 3 * d;
  const HostBuffer xb = Random(rng_, static_cast<size_t>(n * row), -2.0f, 2.0f), before(xb.size());
  std::copy_n(xb.data(), xb.size(), before.data());
  const HostBuffer wb = Random(rng_, static_cast<size_t>(d));
  const HostBuffer angles = Random(rng_, static_cast<size_t>(n * dh / 2), -3.1f, 3.1f);
  const HostBuffer cb(angles.size()), sb(angles.size());
  for (size_t i = 0; i < angles.size(); ++i) {
    cb.data()[i] = std::cos(angles.data()[i]);
    sb.data()[i] = std::sin(angles.data()[i]);
  }
  const HostBuffer want_b(static_cast<size_t>(n * d));
  for (int64_t t = 0; t < n; ++t) {
    const float* x = before.data() + t * row;
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += double{x[i]} * x[i];
    const double inv = 1.0 / std::sqrt(ss / d + 1e-6);
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < dh / 2; ++j) {
        const int64_t i0 = h * dh + 2 * j;
        const double x0 = x[i0] * inv * wb.data()[i0], x1 = x[i0 + 1] * inv * wb.data()[i0 + 1];
        const double c = std::cos(double{angles.data()[t * dh / 2 + j]}),
                     s = std::sin(double{angles.data()[t * dh / 2 + j]});
        want_b.data()[t * d + i0] = static_cast<float>(x0 * c - x1 * s);
        want_b.data()[t * d + i0 + 1] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
  Tensor q = Strided(xb.data(), {n, d}, row);
  cpu_.rms_norm_rope(q, wb.view({d}), 1e-6f, cb.view({n, dh / 2}), sb.view({n, dh / 2}), heads);
  EXPECT_TRUE(AllClose(q, want_b.view({n, d}), 1e-4));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = d; i < row; ++i) ASSERT_EQ(xb.data()[t * row + i], before.data()[t * row + i]) << t << " " << i;
  }
}

// A shape the rotation cannot take (heads not dividing the width) leaves x as it was.
TEST_F(BackendDefaults, RmsNormRopeRefusesAMismatchedHeadCountWhole) {
  const HostBuffer xb = Random(rng_, 10 * 12), before(xb.size());
  std::copy_n(xb.data(), xb.size(), before.data());
  const HostBuffer wb = Random(rng_, 12), cb = Random(rng_, 10 * 2), sb = Random(rng_, 10 * 2);
  Tensor x = xb.view({10, 12});
  cpu_.rms_norm_rope(x, wb.view({12}), 1e-6f, cb.view({10, 2}), sb.view({10, 2}), 5);
  for (size_t i = 0; i < xb.size(); ++i) ASSERT_EQ(xb.data()[i], before.data()[i]);
}

// mul and sub on strided rows: each element of x against the operation on its floats; the
// padding between rows untouched.
TEST_F(BackendDefaults, MulAndSubAreElementwise) {
  constexpr int64_t m = 7, d = 33, pad = 5;
  for (const bool multiply : {true, false}) {
    SCOPED_TRACE(multiply ? "mul" : "sub");
    const HostBuffer xb = Random(rng_, static_cast<size_t>(m * (d + pad))), before(xb.size());
    std::copy_n(xb.data(), xb.size(), before.data());
    const HostBuffer fb = Random(rng_, static_cast<size_t>(m * d));
    Tensor x = Strided(xb.data(), {m, d}, d + pad);
    if (multiply) {
      cpu_.mul(x, fb.view({m, d}));
    } else {
      cpu_.sub(x, fb.view({m, d}));
    }
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t j = 0; j < d + pad; ++j) {
        const float was = before.data()[r * (d + pad) + j];
        float want = was;
        if (j < d) want = multiply ? was * fb.data()[r * d + j] : was - fb.data()[r * d + j];
        ASSERT_EQ(xb.data()[r * (d + pad) + j], want) << r << " " << j;
      }
    }
  }
}

// Σ|a − b| and Σ|b| against float64 sums, on both host backends; mismatched sizes give NaN sums.
TEST_F(BackendDefaults, AbsDiffSumsAreTheL1DistanceAndNorm) {
  ReferenceBackend ref;
  constexpr int64_t n = 1001;
  const HostBuffer ab = Random(rng_, n, -3.0f, 3.0f), bb = Random(rng_, n, -2.0f, 2.0f);
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff += std::fabs(double{ab.data()[i]} - bb.data()[i]);
    norm += std::fabs(double{bb.data()[i]});
  }
  for (Backend* be : {static_cast<Backend*>(&cpu_), static_cast<Backend*>(&ref)}) {
    SCOPED_TRACE(be->name());
    float sums[2] = {-1, -1};
    Tensor st = Tensor::View(sums, DType::kF32, {2});
    be->abs_diff_sums(ab.view({n}), bb.view({n}), st);
    EXPECT_NEAR(sums[0], diff, diff * kRtol);
    EXPECT_NEAR(sums[1], norm, norm * kRtol);
    float mismatched[2] = {-1, -1};
    Tensor mt = Tensor::View(mismatched, DType::kF32, {2});
    be->abs_diff_sums(ab.view({n}), bb.view({n - 1}), mt);
    EXPECT_TRUE(std::isnan(mismatched[0]) && std::isnan(mismatched[1])) << "no threshold passes a mismatch";
  }
}

// scores[h, i, j] + bias[h, j − i + Lq − 1], softmax over j, for Lq ≠ Lk.
TEST_F(BackendDefaults, SoftmaxRelativeBiasAddsTheOffsetBias) {
  for (auto [heads, lq, lk] : {std::tuple<int64_t, int64_t, int64_t>{2, 5, 7}, {3, 8, 3}, {1, 1, 1}}) {
    SCOPED_TRACE(std::to_string(heads) + " " + std::to_string(lq) + " " + std::to_string(lk));
    const HostBuffer sb = Random(rng_, static_cast<size_t>(heads * lq * lk), -5.0f, 5.0f);
    const HostBuffer bias = Random(rng_, static_cast<size_t>(heads * (lq + lk - 1)), -3.0f, 3.0f);
    const HostBuffer want_b(sb.size());
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < lq; ++i) {
        std::vector<double> row(static_cast<size_t>(lk));
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < lk; ++j) {
          row[j] = double{sb.data()[(h * lq + i) * lk + j]} + bias.data()[h * (lq + lk - 1) + (j - i + lq - 1)];
          mx = std::max(mx, row[j]);
        }
        for (double& v : row) sum += v = std::exp(v - mx);
        for (int64_t j = 0; j < lk; ++j) want_b.data()[(h * lq + i) * lk + j] = static_cast<float>(row[j] / sum);
      }
    }
    Tensor s = sb.view({heads, lq, lk});
    cpu_.softmax_relative_bias(s, bias.view({heads, lq + lk - 1}));
    EXPECT_TRUE(AllClose(sb.view({heads * lq, lk}), want_b.view({heads * lq, lk}), kRtol));
  }
}

}  // namespace
}  // namespace ds
