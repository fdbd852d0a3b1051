// y[C, R] = x[R, C]ᵀ on device views whose rows may be strided (Backend::transpose).
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

Status Transpose(const Context& ctx, const Tensor& x, const Tensor& y);

}  // namespace ds::cuda
