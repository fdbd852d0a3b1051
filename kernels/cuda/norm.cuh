// Row normalisations over the last dim: LayerNorm (optionally affine, or with the AdaLN
// modulation fused), in-place RMSNorm, and RMSNorm fused with the RoPE that follows it on q/k. Tensors are device
// views; see core/backend.h.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

// y = (x − mean)/sqrt(var + eps), then · weight, + bias, · (1 + scale), + shift for each of the
// [D] vectors given (null = skipped): covers layer_norm and layer_norm_modulate. y is F32, or BF16
// (rounded once, at the end) for rows that only bf16 GEMMs read.
struct LayerNormVectors {
  const float* weight = nullptr;
  const float* bias = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
};
Status LayerNorm(const Context& ctx, const Tensor& x, const LayerNormVectors& vectors, float eps, const Tensor& y);

// x = x / sqrt(mean(x²) + eps) · weight, in place.
Status RmsNorm(const Context& ctx, const Tensor& x, const float* weight, float eps);

// RmsNorm over each row of x[N, H·dh], then RoPE of each head's pairs (2j, 2j + 1) by cos/sin[N,
// dh/2] (Rope on the [N, H, dh] view), in one pass over x when the rows are float4 vectors (width
// and dh multiples of 4, 16-byte aligned rows and weight, 8-byte aligned cos/sin rows); else the
// two kernels.
Status RmsNormRope(const Context& ctx, const Tensor& x, const float* weight, float eps, const Tensor& cos,
                   const Tensor& sin, int64_t heads);

}  // namespace ds::cuda
