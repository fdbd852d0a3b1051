// Shared helpers for the kernel tests: random buffers, NaN poisoning, and a tolerance check that
// refuses to pass on trivial (all-zero) expectations.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/rows.h"

namespace ds::test {

// A different, reproducible seed for every test (and every parameter of a parameterised test).
inline std::mt19937 TestRng() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::mt19937(
      static_cast<uint32_t>(std::hash<std::string>{}(std::string(info->test_suite_name()) + "." + info->name())));
}

inline HostBuffer Random(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  HostBuffer b(n);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (size_t i = 0; i < n; ++i) b.data()[i] = dist(rng);
  return b;
}

// x rounded to bfloat16 (to nearest even) and back: what a bf16 operand holds.
inline float Bf16Rounded(float x) { return BFloat16ToFloat(FloatToBFloat16(x)); }

// Every value of b through Bf16Rounded, as a new buffer.
inline HostBuffer Bf16Rounded(const HostBuffer& b) {
  HostBuffer r(b.size());
  for (size_t i = 0; i < b.size(); ++i) r.data()[i] = Bf16Rounded(b.data()[i]);
  return r;
}

inline HostBuffer Poisoned(size_t n) {
  HostBuffer b(n);
  for (size_t i = 0; i < n; ++i) b.data()[i] = std::numeric_limits<float>::quiet_NaN();
  return b;
}

inline void Poison(const HostBuffer& b) {
  for (size_t i = 0; i < b.size(); ++i) b.data()[i] = std::numeric_limits<float>::quiet_NaN();
}

// A view of `shape` whose dim-0 stride is `row_stride` floats: a slice of a wider buffer.
inline Tensor Strided(float* data, std::initializer_list<int64_t> shape, int64_t row_stride) {
  Tensor t = Tensor::View(data, DType::kF32, shape);
  t.strides[0] = row_stride * static_cast<int64_t>(sizeof(float));
  return t;
}

inline double Rms(const Tensor& t) {
  Rows r(t);
  double ss = 0;
  for (int64_t i = 0; i < r.count(); ++i) {
    for (int64_t j = 0; j < r.width(); ++j) ss += static_cast<double>(r[i][j]) * r[i][j];
  }
  return std::sqrt(ss / static_cast<double>(r.count() * r.width()));
}

inline double Rms(const HostBuffer& b) { return Rms(b.view({static_cast<int64_t>(b.size())})); }

// |got − want| ≤ rtol·(|want| + rms(want)) everywhere: relative where values are large, scaled to
// the tensor's magnitude where they cross zero. Fails on NaN and on an all-zero expectation.
inline ::testing::AssertionResult AllClose(const Tensor& got, const Tensor& want, double rtol) {
  const double rms = Rms(want);
  if (!(rms > 1e-6)) return ::testing::AssertionFailure() << "trivial expectation, rms " << rms;
  Rows g(got), w(want);
  int64_t bad = 0;
  std::string first;
  for (int64_t i = 0; i < w.count(); ++i) {
    for (int64_t j = 0; j < w.width(); ++j) {
      const double a = g[i][j], b = w[i][j];
      if (std::abs(a - b) <= rtol * (std::abs(b) + rms)) continue;  // false for NaN
      if (bad++ == 0) {
        first = "row " + std::to_string(i) + " col " + std::to_string(j) + ": got " + std::to_string(a) + ", want " +
                std::to_string(b);
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << w.count() * w.width() << " elements differ (rtol " << rtol
                                       << ", rms " << rms << "); first at " << first;
}

// The floats of b outside the rows of view t must still be NaN: the op wrote nothing else.
inline ::testing::AssertionResult UntouchedOutside(const HostBuffer& b, const Tensor& t) {
  std::vector<bool> inside(b.size(), false);
  Rows r(t);
  for (int64_t i = 0; i < r.count(); ++i) {
    const auto start = static_cast<size_t>(r[i] - b.data());
    for (int64_t j = 0; j < r.width(); ++j) inside[start + static_cast<size_t>(j)] = true;
  }
  for (size_t i = 0; i < b.size(); ++i) {
    if (!inside[i] && !std::isnan(b.data()[i])) {
      return ::testing::AssertionFailure() << "wrote float " << i << " outside the view";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ds::test
