#include "kernels/cuda/attention/naive_attention.cuh"

#include <cuda_bf16.h>

#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/warp.cuh"

namespace ds::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 16;  // dh ≤ 32·16: the Wan VAE's single-head mid-block attention is 384 wide

// A q/k/v/o view: rows of f32 or of bf16 elements (computed in f32 either way).
struct Operand {
  RowLayout rows;
  bool bf16;
};
// Element d of a row of `bf16` or f32 elements.
__device__ __forceinline__ float Load(const void* row, bool bf16, int64_t d) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(row)[d]) : static_cast<const float*>(row)[d];
}

// Rows of q/o are (query, head) pairs, rows of k/v (key, head) pairs; lane l holds dims l, l+32, …
__global__ void __launch_bounds__(kWarps* kWarpSize)
    NaiveAttentionKernel(Operand q, Operand k, Operand v, Operand o, int64_t heads, int64_t nk, float scale) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarpSize;
  if (row >= q.rows.count) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t head = row % heads, dh = q.rows.width;
  const void* qi = q.rows.Row(row);
  float r_q[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) {
    const int64_t d = lane + kWarpSize * e;
    r_q[e] = d < dh ? Load(qi, q.bf16, d) : 0.0f;
    acc[e] = 0.0f;
  }
  float max = -__builtin_huge_valf(), sum = 0.0f;
  for (int64_t j = 0; j < nk; ++j) {
    const void* kj = k.rows.Row(j * heads + head);
    const void* vj = v.rows.Row(j * heads + head);
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int64_t d = lane + kWarpSize * e;
      if (d < dh) dot += r_q[e] * Load(kj, k.bf16, d);
    }
    const float s = WarpSum(dot) * scale;
    const float new_max = fmaxf(max, s);
    const float alpha = expf(max - new_max);  // exp(−inf) = 0 on the first key
    const float p = expf(s - new_max);
    sum = sum * alpha + p;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int64_t d = lane + kWarpSize * e;
      if (d < dh) acc[e] = acc[e] * alpha + p * Load(vj, v.bf16, d);
    }
    max = new_max;
  }
  void* oi = o.rows.Row(row);
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) {
    const int64_t d = lane + kWarpSize * e;
    if (d >= dh) continue;
    if (o.bf16) {
      static_cast<__nv_bfloat16*>(oi)[d] = __float2bfloat16_rn(acc[e] / sum);
    } else {
      static_cast<float*>(oi)[d] = acc[e] / sum;
    }
  }
}

Operand OperandOf(const Tensor& t) { return {RowsOf(t), t.dtype == DType::kBF16}; }

}  // namespace

Status NaiveAttention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                      const Tensor& o) {
  const int64_t heads = q.shape[1], dh = q.shape[2], nk = k.shape[0];
  if (dh > kWarpSize * kMaxPerLane) {
    return Status(Code::kUnsupported, "CUDA naive attention: head dim " + std::to_string(dh) + " > " +
                                          std::to_string(kWarpSize * kMaxPerLane));
  }
  const RowLayout ql = RowsOf(q);
  if (ql.count == 0) return Status::Ok();
  const unsigned blocks = static_cast<unsigned>(CeilDiv64(ql.count, kWarps));
  NaiveAttentionKernel<<<blocks, kWarps * kWarpSize, 0, ctx.stream>>>(OperandOf(q), OperandOf(k), OperandOf(v),
                                                                      OperandOf(o), heads, nk, scale);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

}  // namespace ds::cuda
