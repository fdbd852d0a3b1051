// Element-wise ops over rows (the AdaLN-Zero residual, plain residual, activations), all in place
// on x. Tensors are device views; see core/backend.h.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

// x[M, D] += gate[D] · f[M, D], or x += f when gate is null.
Status GateResidual(const Context& ctx, const Tensor& x, const float* gate, const Tensor& f);
// x *= f element-wise (same shape; rows of either may be strided).
Status Multiply(const Context& ctx, const Tensor& x, const Tensor& f);
// x −= f element-wise (same shape; rows of either may be strided).
Status Subtract(const Context& ctx, const Tensor& x, const Tensor& f);

enum class Activation { kGeluTanh, kSilu };
Status Activate(const Context& ctx, const Tensor& x, Activation act);

// dst (F32 or BF16, contiguous) = src (any DType; contiguous, aligned to its element) · scale,
// element by element; a BF16 dst gets the f32 product rounded to nearest even.
Status Widen(const Context& ctx, const Tensor& src, const Tensor& dst, float scale);

// dst[M·D] (BF16, contiguous) = x[..., D] (F32 rows of any strides) rounded to nearest even: a
// GEMM operand for BF16 weights, attention's bf16 q/k/v.
Status NarrowToBf16(const Context& ctx, const Tensor& x, void* dst);

}  // namespace ds::cuda
