#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/rows.h"

namespace ds {
namespace {

// im2col works on bands of output rows so that its buffer stays cache-sized (and small next to a
// decoder's activations) instead of 9× the input; bands are also the unit of parallelism.
constexpr int64_t kIm2colFloats = int64_t{1} << 18;
// Bands per image when the im2col buffer allows: work for up to this many threads.
constexpr int64_t kBands = 8;

// One im2col row: tap (di, dj) of channel c for output rows [i0, i0 + rows), zero outside the
// image.
void Im2colRow(const Rows& x, int64_t c, int64_t height, int64_t width, int di, int dj, int64_t i0, int64_t rows,
               float* dst) {
  for (int64_t ii = 0; ii < rows; ++ii, dst += width) {
    const int64_t si = i0 + ii + di - 1;
    if (si < 0 || si >= height) {
      std::fill_n(dst, width, 0.0f);
      continue;
    }
    const float* src = x[c * height + si];
    const int64_t lo = dj == 0 ? 1 : 0, hi = dj == 2 ? width - 1 : width;
    if (lo > 0) dst[0] = 0.0f;
    if (hi < width) dst[width - 1] = 0.0f;
    std::copy(src + lo + dj - 1, src + hi + dj - 1, dst + lo);
  }
}

}  // namespace

void CpuBackend::conv3x3(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  const int64_t c_in = x.shape[0], height = x.shape[1], width = x.shape[2], c_out = w.shape[0];
  const int64_t k = c_in * 9, ldy = FloatStride(y, 0);
  // Bands of rows, each one sgemm: their height depends on the image only, never on the thread
  // count, since OpenBLAS's result for an output element can depend on the GEMM's width (with bands
  // per thread, a Wan clip differed in the last bit of a few pixels between 1 and 2 threads).
  const int64_t band =
      std::clamp(std::min(kIm2colFloats / (k * width), (height + kBands - 1) / kBands), int64_t{1}, height);
  const int64_t bands = (height + band - 1) / band;
  const int team = static_cast<int>(std::min<int64_t>(threads_, bands));
  float* cols_all = scratch(team * k * band * width);
  SingleThreadedBlas();
  Rows xr(x);
#pragma omp parallel num_threads(team) if (2 * c_out * k * height * width >= kMinParallelFlops)
  {
    float* cols = cols_all + omp_get_thread_num() * k * band * width;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < bands; ++b) {
      const int64_t i0 = b * band, rows = std::min(band, height - i0), n = rows * width;
      for (int64_t r = 0; r < k; ++r) {
        Im2colRow(xr, r / 9, height, width, static_cast<int>(r % 9 / 3), static_cast<int>(r % 3), i0, rows,
                  cols + r * n);
      }
      for (int64_t o = 0; o < c_out; ++o) std::fill_n(y.f32() + o * ldy + i0 * width, n, bias.f32()[o]);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(c_out), static_cast<int>(n),
                  static_cast<int>(k), 1.0f, w.f32(), static_cast<int>(k), cols, static_cast<int>(n), 1.0f,
                  y.f32() + i0 * width, static_cast<int>(ldy));
    }
  }
}

void CpuBackend::upsample_nearest2x(const Tensor& x, Tensor& y) {
  const int64_t height = x.shape[1], width = x.shape[2];
  Rows xr(x), yr(y);
  ParallelFor(threads_, xr.count(), 4 * width, [&](int64_t r) {
    const float* src = xr[r];
    const int64_t c = r / height, i = r % height;
    float* top = yr[c * 2 * height + 2 * i];
    for (int64_t j = 0; j < width; ++j) top[2 * j] = top[2 * j + 1] = src[j];
    std::copy_n(top, 2 * width, yr[c * 2 * height + 2 * i + 1]);
  });
}

// In 32 x 32 tiles (one cache line of floats on each side per row), bands of tiles per thread.
void CpuBackend::transpose(const Tensor& x, Tensor& y) {
  constexpr int64_t kTile = 32;
  Rows xr(x), yr(y);
  const int64_t rows = xr.count(), cols = xr.width();
  ParallelFor(threads_, (rows + kTile - 1) / kTile, kTile * cols, [&](int64_t band) {
    const int64_t r0 = band * kTile, r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r) {
        const float* src = xr[r];
        for (int64_t c = c0; c < c1; ++c) yr[c][r] = src[c];
      }
    }
  });
}

}  // namespace ds
