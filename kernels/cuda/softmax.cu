#include "kernels/cuda/softmax.cuh"

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

// One warp per row (h, i): three passes over the row (add the bias and take the max; exponentiate
// and sum; scale), the re-reads from L1. UMT5's rows are 512 floats: 16 per lane.
constexpr int kRowsPerBlock = 8;
constexpr int kThreads = kRowsPerBlock * kWarpSize;

__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

__global__ void __launch_bounds__(kThreads)
    SoftmaxRelativeBiasKernel(float* scores, const float* bias, int64_t rows, int64_t lq, int64_t lk) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= rows) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t h = row / lq, i = row % lq;
  float* s = scores + row * lk;
  const float* b = bias + h * (lq + lk - 1) + (lq - 1 - i);  // b[j] = bias[h, j − i + lq − 1]
  float mx = -INFINITY;
  for (int64_t j = lane; j < lk; j += kWarpSize) {
    const float v = s[j] + b[j];
    s[j] = v;
    mx = fmaxf(mx, v);
  }
  mx = WarpMax(mx);
  float sum = 0.0f;
  for (int64_t j = lane; j < lk; j += kWarpSize) {
    const float e = expf(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  const float inv = 1.0f / WarpSum(sum);
  for (int64_t j = lane; j < lk; j += kWarpSize) s[j] *= inv;
}

}  // namespace

Status SoftmaxRelativeBias(const Context& ctx, const Tensor& scores, const Tensor& bias) {
  if (scores.ndim != 3 || !scores.contiguous() || !bias.contiguous() ||
      bias.numel() != scores.shape[0] * (scores.shape[1] + scores.shape[2] - 1)) {
    return Error(Code::kInvalidArgument, "CUDA softmax_relative_bias: scores {} (contiguous [H, Lq, Lk]), bias {}",
                 scores.shape_string(), bias.shape_string());
  }
  const int64_t rows = scores.shape[0] * scores.shape[1];
  if (rows == 0 || scores.shape[2] == 0) return Status::Ok();
  SoftmaxRelativeBiasKernel<<<static_cast<unsigned>(CeilDiv64(rows, kRowsPerBlock)), kThreads, 0, ctx.stream>>>(
      scores.f32(), bias.f32(), rows, scores.shape[1], scores.shape[2]);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
