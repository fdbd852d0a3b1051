#include <cblas.h>

#include <algorithm>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/rows.h"

namespace ds {
namespace {

// BLAS leading dimension of a [rows, width] view: its row stride, which for a single row may be
// anything (BLAS still insists on ≥ width).
int64_t LeadingDim(const Tensor& t, int64_t rows) {
  return t.ndim < 2 || rows == 1 ? t.dim(-1) : FloatStride(t, t.ndim - 2);
}

// Splits y[M, N] into a grid of grid_m × grid_n = threads blocks. Each block packs its own slices
// of x and w, so the split minimises the packing per flop, ∝ 1/block_m + 1/block_n.
struct Grid {
  int64_t grid_m = 1, grid_n = 1;
};

Grid GemmGrid(int64_t m, int64_t n, int threads) {
  Grid best;
  double best_cost = 1e300;
  for (int64_t gm = 1; gm <= threads; ++gm) {
    if (threads % gm != 0 || gm > m || threads / gm > n) continue;
    const double bm = static_cast<double>(m) / gm, bn = static_cast<double>(n) * gm / threads;
    const double cost = 1.0 / bm + 1.0 / bn;
    if (cost < best_cost) {
      best = {gm, threads / gm};
      best_cost = cost;
    }
  }
  return best;
}

// Block edges rounded to the sgemm micro-tile so that only the last block has a ragged edge.
int64_t BlockEdge(int64_t total, int64_t blocks, int64_t i) {
  constexpr int64_t kAlign = 16;
  const int64_t per_block = (total + blocks - 1) / blocks;
  const int64_t step = (per_block + kAlign - 1) / kAlign * kAlign;
  return std::min(total, i * step);
}

}  // namespace

// Parallel over blocks of y with single-threaded sgemm in each: OpenBLAS's own pthread pool and the
// OpenMP pool of the surrounding ops would otherwise spin against each other on the same cores.
// The bias is written first and the GEMM accumulates onto it (beta = 1), one pass over y.
void CpuBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  Rows xr(x), yr(y);
  const int64_t m = xr.count(), k = xr.width(), n = w.shape[0];
  const int64_t lda = LeadingDim(x, m), ldb = LeadingDim(w, n), ldc = LeadingDim(y, m);
  SingleThreadedBlas();
  const int team = 2 * m * n * k >= kMinParallelFlops ? threads_ : 1;
  const Grid grid = GemmGrid(m, n, team);
#pragma omp parallel for num_threads(team) schedule(static) if (team > 1)
  for (int64_t t = 0; t < grid.grid_m * grid.grid_n; ++t) {
    const int64_t m0 = BlockEdge(m, grid.grid_m, t / grid.grid_n);
    const int64_t m1 = BlockEdge(m, grid.grid_m, t / grid.grid_n + 1);
    const int64_t n0 = BlockEdge(n, grid.grid_n, t % grid.grid_n);
    const int64_t n1 = BlockEdge(n, grid.grid_n, t % grid.grid_n + 1);
    if (m1 <= m0 || n1 <= n0) continue;
    if (bias) {
      for (int64_t r = m0; r < m1; ++r) std::copy(bias->f32() + n0, bias->f32() + n1, yr[r] + n0);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m1 - m0),
                static_cast<int>(n1 - n0), static_cast<int>(k), 1.0f, x.f32() + m0 * lda,
                static_cast<int>(lda), w.f32() + n0 * ldb, static_cast<int>(ldb),
                bias ? 1.0f : 0.0f, y.f32() + m0 * ldc + n0, static_cast<int>(ldc));
  }
}

}  // namespace ds
