#include "kernels/cuda/norm.cuh"

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

// One warp per row: a warp streams a row of 64..5120 floats in coalesced 128-byte pieces, and the
// short per-head q/k rows (64..128) still keep every lane busy. The row is read three times
// (mean, variance, output); the re-reads hit L1. Two passes keep the variance accurate when
// |mean| ≫ std.
constexpr int kRowsPerBlock = 8;
constexpr int kThreads = kRowsPerBlock * kWarpSize;

__global__ void __launch_bounds__(kThreads) LayerNormKernel(RowLayout x, RowLayout y, LayerNormVectors v, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t d = x.width;
  const float* xr = x.Row(row);
  float* yr = y.Row(row);

  float sum = 0.0f;
  for (int64_t i = lane; i < d; i += kWarpSize) sum += xr[i];
  const float mean = WarpSum(sum) / static_cast<float>(d);
  float sq = 0.0f;
  for (int64_t i = lane; i < d; i += kWarpSize) sq += (xr[i] - mean) * (xr[i] - mean);
  const float rstd = rsqrtf(WarpSum(sq) / static_cast<float>(d) + eps);

  for (int64_t i = lane; i < d; i += kWarpSize) {
    float out = (xr[i] - mean) * rstd;
    if (v.weight) out *= v.weight[i];
    if (v.bias) out += v.bias[i];
    if (v.scale) out *= 1.0f + v.scale[i];
    if (v.shift) out += v.shift[i];
    yr[i] = out;
  }
}

__global__ void __launch_bounds__(kThreads) RmsNormKernel(RowLayout x, const float* weight, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= x.count) return;
  const int lane = threadIdx.x % kWarpSize;
  float* xr = x.Row(row);
  float sq = 0.0f;
  for (int64_t i = lane; i < x.width; i += kWarpSize) sq += xr[i] * xr[i];
  const float inv = rsqrtf(WarpSum(sq) / static_cast<float>(x.width) + eps);
  for (int64_t i = lane; i < x.width; i += kWarpSize) xr[i] = xr[i] * inv * weight[i];
}

dim3 RowBlocks(int64_t rows) { return dim3(static_cast<unsigned>(CeilDiv64(rows, kRowsPerBlock))); }

}  // namespace

Status LayerNorm(const Context& ctx, const Tensor& x, const LayerNormVectors& vectors, float eps, const Tensor& y) {
  const RowLayout xl = RowsOf(x);
  if (xl.count == 0) return Status::Ok();
  LayerNormKernel<<<RowBlocks(xl.count), kThreads, 0, ctx.stream>>>(xl, RowsOf(y), vectors, eps);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

Status RmsNorm(const Context& ctx, const Tensor& x, const float* weight, float eps) {
  const RowLayout xl = RowsOf(x);
  if (xl.count == 0) return Status::Ok();
  RmsNormKernel<<<RowBlocks(xl.count), kThreads, 0, ctx.stream>>>(xl, weight, eps);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
