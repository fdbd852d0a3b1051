#include "kernels/cuda/transpose.cuh"

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/transpose_tile.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

using transpose::kRowsPerPass;
using transpose::kTile;

// grid.x walks x's row tiles (up to 2³¹ − 1 of them: pixels), grid.y strides over its column tiles.
__global__ void __launch_bounds__(kTile* kRowsPerPass) TransposeKernel(RowLayout x, RowLayout y) {
  __shared__ transpose::Tile tile;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTile;
  for (int64_t c0 = static_cast<int64_t>(blockIdx.y) * kTile; c0 < x.width;
       c0 += static_cast<int64_t>(gridDim.y) * kTile) {
    transpose::Load(x, r0, c0, threadIdx.x, threadIdx.y, tile);
    __syncthreads();
    transpose::Store(x, y, r0, c0, threadIdx.x, threadIdx.y, tile);
    __syncthreads();  // the tile is refilled for the next column tile
  }
}

}  // namespace

Status Transpose(const Context& ctx, const Tensor& x, const Tensor& y) {
  const RowLayout xl = RowsOf(x), yl = RowsOf(y);
  if (xl.count == 0 || xl.width == 0) return Status::Ok();
  if (yl.count != xl.width || yl.width != xl.count) {
    return Error(Code::kInvalidArgument, "CUDA transpose: {} into {}", x.shape_string(), y.shape_string());
  }
  const int64_t column_tiles = CeilDiv64(xl.width, kTile);
  const dim3 grid(static_cast<unsigned>(CeilDiv64(xl.count, kTile)),
                  static_cast<unsigned>(column_tiles < 65535 ? column_tiles : 65535));
  TransposeKernel<<<grid, dim3(kTile, kRowsPerPass), 0, ctx.stream>>>(xl, yl);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
