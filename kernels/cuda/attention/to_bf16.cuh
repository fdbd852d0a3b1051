// Heads [h0, h0 + count) of an f32 x[N, H, dh] view (any token and head strides) as a contiguous
// bf16 [N, count, dh] buffer: the input format of the flash kernel.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

Status HeadsToBf16(const Context& ctx, const Tensor& x, int64_t h0, int64_t count, uint16_t* out);

}  // namespace ds::cuda
