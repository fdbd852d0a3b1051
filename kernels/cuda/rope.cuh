// Rotary position embedding, in place: x[N, H, dh] (token stride may exceed H·dh) rotated pairwise
// by cos/sin[N, dh/2]; see Backend::rope.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

Status Rope(const Context& ctx, const Tensor& x, const Tensor& cos, const Tensor& sin);

}  // namespace ds::cuda
