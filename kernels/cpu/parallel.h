// Threading shared by the CpuBackend op files.
#pragma once

#include <cstdint>

extern "C" void openblas_set_num_threads(int num_threads);  // not in every cblas.h

namespace ds {

// Below this many touched elements an op stays on the calling thread: waking the team costs more.
inline constexpr int64_t kMinParallelElements = int64_t{1} << 15;
// Same for GEMM-shaped work.
inline constexpr int64_t kMinParallelFlops = int64_t{1} << 21;

// All parallelism is the OpenMP team's: sgemm runs single-threaded on blocks inside parallel
// regions. With OpenBLAS's own pthread pool active as well, the two pools spin against each other
// at every op boundary (measured on a busy 2-core VM: small linears up to 100x slower). OpenBLAS's
// thread count is process-wide and anyone may change it, so BLAS-using ops pin it again on entry (a
// few loads).
inline void SingleThreadedBlas() { openblas_set_num_threads(1); }

// fn(i) for i in [0, n), statically split over `threads` when the work pays for it. Static
// scheduling keeps every item on the same thread from call to call (warm caches, stable results).
template <typename Fn>
void ParallelFor(int threads, int64_t n, int64_t elements_per_item, const Fn& fn) {
  const bool parallel = threads > 1 && n > 1 && n * elements_per_item >= kMinParallelElements;
#pragma omp parallel for num_threads(threads) schedule(static) if (parallel)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace ds
