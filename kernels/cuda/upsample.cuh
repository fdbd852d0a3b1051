// Nearest-neighbour 2× upsampling: y[C, 2H, 2W] from x[C, H, W].
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

Status UpsampleNearest2x(const Context& ctx, const Tensor& x, const Tensor& y);

}  // namespace ds::cuda
