// Helpers for the optimized CPU kernels: ISA multiversioning and vectorizable math.
//
// The library is built for baseline x86-64 (SSE2), which would leave 3/4 of a modern core's FP
// throughput unused. Hot row kernels are therefore compiled three times and picked at load time
// (GCC/Clang target_clones → ifunc), so one binary runs everywhere and uses AVX2/AVX-512 where
// present. OpenMP parallel regions stay in plain functions and call these per row or per tile.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DS_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DS_MULTIVERSION
#endif

// For helpers of multiversioned kernels: inlined, they are compiled for the caller's ISA too.
#if defined(__GNUC__)
#define DS_INLINE inline __attribute__((always_inline))
#else
#define DS_INLINE inline
#endif

namespace ds::simd {

inline constexpr float kLog2e = 1.4426950408889634f;

// 2^x with ~2 ulp error (Cephes exp2f polynomial on [-0.5, 0.5]), written so that a loop over it
// vectorizes: no libm call, no branches. Saturates to 0 at x ≤ -127, so 2^-inf = 0.
inline float Exp2(float x) {
  x = std::min(std::max(x, -127.0f), 127.0f);
  const float n = (x + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5·2^23 drops the fraction
  const float f = x - n;
  float p = 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

// x·sigmoid(a·x) is the shape of both SiLU (a = 1) and tanh-GELU (as x·sigmoid(2u)); this form has
// no cancellation for large |x|, unlike 0.5·x·(1 + tanh(u)).
inline float MulSigmoid(float x, float z) { return x / (1.0f + Exp2(-z * kLog2e)); }

}  // namespace ds::simd
