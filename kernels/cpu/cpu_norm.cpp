#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/rows.h"
#include "kernels/cpu/simd.h"

namespace ds {
namespace {

// y = (x − mean)·rstd · (mul_offset + mul) + add, with mul/add optional. Two passes over the row
// for the variance: one-pass E[x²] − E[x]² loses all digits when |mean| ≫ std in float.
DS_MULTIVERSION void LayerNormRow(const float* __restrict x, float* __restrict y, int64_t d,
                                  float eps, const float* __restrict mul, float mul_offset,
                                  const float* __restrict add) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < d; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(d);
  float var = 0.0f;
#pragma omp simd reduction(+ : var)
  for (int64_t i = 0; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.0f / std::sqrt(var / static_cast<float>(d) + eps);
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) {
    float v = (x[i] - mean) * rstd;
    if (mul) v *= mul_offset + mul[i];
    if (add) v += add[i];
    y[i] = v;
  }
}

DS_MULTIVERSION void RmsNormRow(float* __restrict x, const float* __restrict weight, int64_t d,
                                float eps) {
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < d; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) x[i] = x[i] * inv * weight[i];
}

}  // namespace

void CpuBackend::layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps,
                            Tensor& y) {
  Rows xr(x), yr(y);
  const float* mul = weight ? weight->f32() : nullptr;
  const float* add = bias ? bias->f32() : nullptr;
  ParallelFor(threads_, xr.count(), xr.width(),
              [&](int64_t r) { LayerNormRow(xr[r], yr[r], xr.width(), eps, mul, 0.0f, add); });
}

void CpuBackend::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale,
                                     float eps, Tensor& y) {
  Rows xr(x), yr(y);
  ParallelFor(threads_, xr.count(), xr.width(), [&](int64_t r) {
    LayerNormRow(xr[r], yr[r], xr.width(), eps, scale.f32(), 1.0f, shift.f32());
  });
}

void CpuBackend::rms_norm(Tensor& x, const Tensor& weight, float eps) {
  Rows xr(x);
  ParallelFor(threads_, xr.count(), xr.width(),
              [&](int64_t r) { RmsNormRow(xr[r], weight.f32(), xr.width(), eps); });
}

}  // namespace ds
