// Reductions to a few numbers the host reads (Backend::abs_diff_sums). Device views; core/backend.h.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

// sums[0] = Σ|a − b|, sums[1] = Σ|b| over contiguous F32 a and b of equal element counts; sums a
// contiguous F32 [2]. Two passes, per-block partials then one block over them, with a grid that
// depends on the element count only: no atomics, so the same inputs give the same bits.
Status AbsDiffSums(const Context& ctx, const Tensor& a, const Tensor& b, const Tensor& sums);

}  // namespace ds::cuda
