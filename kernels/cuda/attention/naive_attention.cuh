// The readable reference attention kernel: f32 throughout, one warp per (query, head), online
// softmax over the keys one at a time. Slow (no data reuse) but exact to f32 rounding; it is the
// spec the flash kernel is checked against on the GPU, and the fallback for head dims or layouts
// the flash kernel does not take. Any strides; dh ≤ 512; each of q/k/v/o F32 or BF16.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/context.h"

namespace ds::cuda {

Status NaiveAttention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                      const Tensor& o);

}  // namespace ds::cuda
