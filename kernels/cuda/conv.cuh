// 3×3 convolution, pad 1, stride 1: y[O, H, W] = conv(x[C, H, W], w[O, C, 3, 3]) + bias[O], as
// im2col into arena scratch followed by one cuBLASLt GEMM that accumulates onto the bias.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

Status Conv3x3(const Context& ctx, const Tensor& x, const Tensor& w, const float* bias, const Tensor& y);

// y = x, row by row (views of the same row count and width, any row strides).
Status CopyRows(const Context& ctx, const Tensor& x, const Tensor& y);

}  // namespace ds::cuda
