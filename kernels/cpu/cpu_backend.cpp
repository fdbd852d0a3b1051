#include "kernels/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/rows.h"
#include "kernels/cpu/simd.h"

namespace ds {
namespace {

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2/π)

DS_MULTIVERSION void GateResidualRow(float* __restrict x, const float* __restrict gate, const float* __restrict f,
                                     int64_t d) {
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) x[i] += gate[i] * f[i];
}

DS_MULTIVERSION void AddRow(float* __restrict x, const float* __restrict f, int64_t d) {
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) x[i] += f[i];
}

DS_MULTIVERSION void GeluTanhRow(float* __restrict x, int64_t d) {
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) {
    const float v = x[i];
    x[i] = simd::MulSigmoid(v, 2.0f * kGeluC * (v + 0.044715f * v * v * v));
  }
}

DS_MULTIVERSION void SiluRow(float* __restrict x, int64_t d) {
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) x[i] = simd::MulSigmoid(x[i], x[i]);
}

DS_MULTIVERSION void RopeRow(float* __restrict x, const float* __restrict cos, const float* __restrict sin,
                             int64_t half) {
#pragma omp simd
  for (int64_t j = 0; j < half; ++j) {
    const float x0 = x[2 * j], x1 = x[2 * j + 1];
    x[2 * j] = x0 * cos[j] - x1 * sin[j];
    x[2 * j + 1] = x0 * sin[j] + x1 * cos[j];
  }
}

}  // namespace

CpuBackend::CpuBackend(int threads) { set_threads(threads); }

// One OpenMP team does all the work, sgemm included (see SingleThreadedBlas).
void CpuBackend::set_threads(int threads) { threads_ = threads > 0 ? threads : std::max(1, omp_get_num_procs()); }

float* CpuBackend::scratch(int64_t count) {
  if (static_cast<int64_t>(scratch_.size()) < count) scratch_.resize(static_cast<size_t>(count));
  return scratch_.data();
}

void CpuBackend::gate_residual(Tensor& x, const Tensor& gate, const Tensor& f) {
  Rows xr(x), fr(f);
  ParallelFor(threads_, xr.count(), xr.width(),
              [&](int64_t r) { GateResidualRow(xr[r], gate.f32(), fr[r], xr.width()); });
}

void CpuBackend::add(Tensor& x, const Tensor& f) {
  Rows xr(x), fr(f);
  ParallelFor(threads_, xr.count(), xr.width(), [&](int64_t r) { AddRow(xr[r], fr[r], xr.width()); });
}

void CpuBackend::gelu_tanh(Tensor& x) {
  Rows xr(x);
  ParallelFor(threads_, xr.count(), xr.width(), [&](int64_t r) { GeluTanhRow(xr[r], xr.width()); });
}

void CpuBackend::silu(Tensor& x) {
  Rows xr(x);
  ParallelFor(threads_, xr.count(), xr.width(), [&](int64_t r) { SiluRow(xr[r], xr.width()); });
}

void CpuBackend::rope(Tensor& x, const Tensor& cos, const Tensor& sin) {
  const int64_t heads = x.shape[1];
  Rows xr(x), cr(cos), sr(sin);
  ParallelFor(threads_, xr.count(), xr.width(),
              [&](int64_t r) { RopeRow(xr[r], cr[r / heads], sr[r / heads], xr.width() / 2); });
}

void CpuBackend::widen(const Tensor& src, Tensor& dst, float scale) {
  if (!src.contiguous() || !dst.contiguous() || src.numel() != dst.numel()) return;
  // Chunks of 64 Ki elements: a whole block's matrices (47 M weights for the 1.3B) per forward.
  constexpr int64_t kChunk = int64_t{1} << 16;
  const int64_t n = src.numel();
  ParallelFor(threads_, (n + kChunk - 1) / kChunk, kChunk, [&](int64_t c) {
    const size_t begin = static_cast<size_t>(c * kChunk);
    WidenRange(src, dst, scale, begin, std::min(static_cast<size_t>(n), begin + kChunk));
  });
}

}  // namespace ds
