// Row softmax with a relative-position bias (Backend::softmax_relative_bias): the T5 family's
// attention scores, computed where they live instead of on the host.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

// In place over contiguous scores[H, Lq, Lk]: scores[h, i, j] += bias[h, j − i + Lq − 1] (bias
// [H, Lq + Lk − 1], contiguous), then softmax over j.
Status SoftmaxRelativeBias(const Context& ctx, const Tensor& scores, const Tensor& bias);

}  // namespace ds::cuda
