#include "kernels/cuda/rope.cuh"

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

constexpr int kThreads = 128;

// grid.x = row of x (token·H + head), threads over the dh/2 pairs of the row.
__global__ void __launch_bounds__(kThreads) RopeKernel(RowLayout x, RowLayout cos, RowLayout sin, int64_t heads) {
  const int64_t row = blockIdx.x;
  float* xr = x.Row(row);
  const float* c = cos.Row(row / heads);
  const float* s = sin.Row(row / heads);
  for (int64_t j = threadIdx.x; j < x.width / 2; j += kThreads) {
    const float x0 = xr[2 * j], x1 = xr[2 * j + 1];
    xr[2 * j] = x0 * c[j] - x1 * s[j];
    xr[2 * j + 1] = x0 * s[j] + x1 * c[j];
  }
}

}  // namespace

Status Rope(const Context& ctx, const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const RowLayout xl = RowsOf(x);
  if (xl.count == 0) return Status::Ok();
  RopeKernel<<<static_cast<unsigned>(xl.count), kThreads, 0, ctx.stream>>>(xl, RowsOf(cos), RowsOf(sin), x.shape[1]);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
