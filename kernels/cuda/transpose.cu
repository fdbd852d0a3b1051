#include "kernels/cuda/transpose.cuh"

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

// The classic tiled transpose: a 32 x 32 tile read along x's rows and written along y's rows, both
// coalesced, through shared memory padded by one column so that the column reads hit 32 banks.
constexpr int kTile = 32, kRowsPerPass = 8;

__global__ void __launch_bounds__(kTile* kRowsPerPass) TransposeKernel(RowLayout x, RowLayout y) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTile, c0 = static_cast<int64_t>(blockIdx.y) * kTile;
  for (int i = threadIdx.y; i < kTile; i += kRowsPerPass) {
    const int64_t r = r0 + i, c = c0 + threadIdx.x;
    if (r < x.count && c < x.width) tile[i][threadIdx.x] = x.Row(r)[c];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kTile; i += kRowsPerPass) {
    const int64_t c = c0 + i, r = r0 + threadIdx.x;
    if (c < x.width && r < x.count) y.Row(c)[r] = tile[threadIdx.x][i];
  }
}

}  // namespace

Status Transpose(const Context& ctx, const Tensor& x, const Tensor& y) {
  const RowLayout xl = RowsOf(x), yl = RowsOf(y);
  if (xl.count == 0 || xl.width == 0) return Status::Ok();
  if (yl.count != xl.width || yl.width != xl.count) {
    return Error(Code::kInvalidArgument, "CUDA transpose: {} into {}", x.shape_string(), y.shape_string());
  }
  // grid.x (up to 2³¹ − 1 tiles) walks x's rows, which may be pixels; grid.y (up to 65535) its columns.
  if (CeilDiv64(xl.width, kTile) > 65535) {
    return Error(Code::kUnsupported, "CUDA transpose: {} columns exceed {}", xl.width, int64_t{65535} * kTile);
  }
  const dim3 grid(static_cast<unsigned>(CeilDiv64(xl.count, kTile)), static_cast<unsigned>(CeilDiv64(xl.width, kTile)));
  TransposeKernel<<<grid, dim3(kTile, kRowsPerPass), 0, ctx.stream>>>(xl, yl);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
