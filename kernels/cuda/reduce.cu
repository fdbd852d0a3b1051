#include "kernels/cuda/reduce.cuh"

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

constexpr int kThreads = 256;
// Enough blocks to keep every SM of an H100 streaming (132 SMs, several blocks each); beyond that
// each thread just loops more. Each block writes one partial, which the second pass adds.
constexpr int kMaxBlocks = 1024;
constexpr int kElementsPerThread = 4;  // at least, before a block is worth launching

// Both sums over the block, in a fixed order (warp shuffles, then warp 0 over the warps' sums);
// the result is in thread 0.
__device__ float2 BlockSum(float2 v) {
  __shared__ float2 warp_sums[kThreads / kWarpSize];
  v.x = WarpSum(v.x);
  v.y = WarpSum(v.y);
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize, warp = static_cast<int>(threadIdx.x) / kWarpSize;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / kWarpSize ? warp_sums[lane] : make_float2(0.0f, 0.0f);
    v.x = WarpSum(v.x);
    v.y = WarpSum(v.y);
  }
  return v;
}

__global__ void __launch_bounds__(kThreads)
    AbsDiffPartialsKernel(const float* a, const float* b, int64_t n, float2* partials) {
  float2 acc = make_float2(0.0f, 0.0f);
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += step) {
    const float bi = b[i];
    acc.x += fabsf(a[i] - bi);
    acc.y += fabsf(bi);
  }
  acc = BlockSum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kThreads) SumPartialsKernel(const float2* partials, int count, float* sums) {
  float2 acc = make_float2(0.0f, 0.0f);
  for (int i = static_cast<int>(threadIdx.x); i < count; i += kThreads) {
    acc.x += partials[i].x;
    acc.y += partials[i].y;
  }
  acc = BlockSum(acc);
  if (threadIdx.x == 0) {
    sums[0] = acc.x;
    sums[1] = acc.y;
  }
}

}  // namespace

Status AbsDiffSums(const Context& ctx, const Tensor& a, const Tensor& b, const Tensor& sums) {
  if (a.dtype != DType::kF32 || b.dtype != DType::kF32 || sums.dtype != DType::kF32 || !a.contiguous() ||
      !b.contiguous() || !sums.contiguous() || a.numel() != b.numel() || sums.numel() != 2) {
    return Error(Code::kInvalidArgument,
                 "CUDA abs_diff_sums: needs contiguous F32 a and b of equal size ({} and {}) "
                 "and F32 sums[2] ({})",
                 a.shape_string(), b.shape_string(), sums.shape_string());
  }
  const int64_t n = a.numel();
  const int blocks =
      static_cast<int>(std::clamp<int64_t>(CeilDiv64(n, int64_t{kThreads} * kElementsPerThread), 1, kMaxBlocks));
  Scratch scratch(ctx);
  DS_ASSIGN_OR_RETURN(void* partials, scratch.Allocate(sizeof(float2) * blocks, "abs_diff_sums partials"));
  auto* p = static_cast<float2*>(partials);
  AbsDiffPartialsKernel<<<blocks, kThreads, 0, ctx.stream>>>(a.f32(), b.f32(), n, p);
  DS_CUDA_TRY_LAUNCH();
  SumPartialsKernel<<<1, kThreads, 0, ctx.stream>>>(p, blocks, sums.f32());
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
