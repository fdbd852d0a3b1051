#include "kernels/cuda/attention/to_bf16.cuh"

#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

constexpr int kThreads = 128;

// One block per (token, head) row.
__global__ void __launch_bounds__(kThreads) ToBf16Kernel(RowLayout x, __nv_bfloat16* out) {
  const float* xr = x.Row(blockIdx.x);
  __nv_bfloat16* yr = out + static_cast<int64_t>(blockIdx.x) * x.width;
  for (int64_t i = threadIdx.x; i < x.width; i += kThreads) yr[i] = __float2bfloat16_rn(xr[i]);
}

// The common case, heads contiguous within each token (q/k/v as [N, H·dh] rows, strided or not)
// and 16-byte aligned: each thread rounds 8 floats (two 16-byte loads, one 16-byte store) of one
// token's span of count·dh floats. Memory-bound; ~3× the one-element-per-thread kernel's rate.
__global__ void __launch_bounds__(kThreads)
    TokenSpansToBf16Kernel(const char* base, int64_t token_stride, int64_t chunks_per_token, int64_t chunks,
                           uint4* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; c < chunks; c += step) {
    const int64_t token = c / chunks_per_token, chunk = c - token * chunks_per_token;
    const float4* src = reinterpret_cast<const float4*>(base + token * token_stride) + 2 * chunk;
    const float4 a = src[0], b = src[1];
    const __nv_bfloat162 p0 = __floats2bfloat162_rn(a.x, a.y), p1 = __floats2bfloat162_rn(a.z, a.w),
                         p2 = __floats2bfloat162_rn(b.x, b.y), p3 = __floats2bfloat162_rn(b.z, b.w);
    uint4 packed;
    packed.x = *reinterpret_cast<const uint32_t*>(&p0);
    packed.y = *reinterpret_cast<const uint32_t*>(&p1);
    packed.z = *reinterpret_cast<const uint32_t*>(&p2);
    packed.w = *reinterpret_cast<const uint32_t*>(&p3);
    out[c] = packed;
  }
}

}  // namespace

Status HeadsToBf16(const Context& ctx, const Tensor& x, int64_t h0, int64_t count, uint16_t* out) {
  Tensor heads = x;
  heads.shape[1] = count;
  heads.data = static_cast<char*>(x.data) + h0 * x.strides[1];
  const RowLayout l = RowsOf(heads);
  if (l.count == 0) return Status::Ok();
  const int64_t span = count * x.shape[2];  // floats of one token's heads
  const bool vectorizable = x.ndim == 3 && x.strides[2] == 4 && x.strides[1] == x.shape[2] * 4 && span % 8 == 0 &&
                            x.strides[0] % 16 == 0 && reinterpret_cast<uintptr_t>(heads.data) % 16 == 0 &&
                            reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (vectorizable) {
    const int64_t chunks = x.shape[0] * (span / 8);
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(CeilDiv64(chunks, kThreads), 65535 * 16));
    TokenSpansToBf16Kernel<<<blocks, kThreads, 0, ctx.stream>>>(static_cast<const char*>(heads.data), x.strides[0],
                                                                span / 8, chunks, reinterpret_cast<uint4*>(out));
    DS_CUDA_TRY_LAUNCH();
    return Status::Ok();
  }
  ToBf16Kernel<<<static_cast<unsigned>(l.count), kThreads, 0, ctx.stream>>>(l, reinterpret_cast<__nv_bfloat16*>(out));
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
