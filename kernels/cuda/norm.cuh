// Row normalisations over the last dim: LayerNorm (optionally affine, or with the AdaLN
// modulation fused) and in-place RMSNorm. Tensors are device views; see core/backend.h.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

// y = (x − mean)/sqrt(var + eps), then · weight, + bias, · (1 + scale), + shift for each of the
// [D] vectors given (null = skipped): covers layer_norm and layer_norm_modulate.
struct LayerNormVectors {
  const float* weight = nullptr;
  const float* bias = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
};
Status LayerNorm(const Context& ctx, const Tensor& x, const LayerNormVectors& vectors, float eps, const Tensor& y);

// x = x / sqrt(mean(x²) + eps) · weight, in place.
Status RmsNorm(const Context& ctx, const Tensor& x, const float* weight, float eps);

}  // namespace ds::cuda
