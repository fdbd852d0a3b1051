#include "kernels/cuda/attention/to_bf16.cuh"

#include <cuda_bf16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/row_layout.h"

namespace ds::cuda {
namespace {

constexpr int kThreads = 128;

// One block per (token, head) row.
__global__ void __launch_bounds__(kThreads) ToBf16Kernel(RowLayout x, __nv_bfloat16* out) {
  const float* xr = x.Row(blockIdx.x);
  __nv_bfloat16* yr = out + static_cast<int64_t>(blockIdx.x) * x.width;
  for (int64_t i = threadIdx.x; i < x.width; i += kThreads) yr[i] = __float2bfloat16_rn(xr[i]);
}

}  // namespace

Status HeadsToBf16(const Context& ctx, const Tensor& x, int64_t h0, int64_t count, uint16_t* out) {
  Tensor heads = x;
  heads.shape[1] = count;
  heads.data = static_cast<char*>(x.data) + h0 * x.strides[1];
  const RowLayout l = RowsOf(heads);
  if (l.count == 0) return Status::Ok();
  ToBf16Kernel<<<static_cast<unsigned>(l.count), kThreads, 0, ctx.stream>>>(l, reinterpret_cast<__nv_bfloat16*>(out));
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
