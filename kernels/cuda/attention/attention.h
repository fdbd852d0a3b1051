// Backend::attention on the GPU: picks the kernel and stages its inputs.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cuda/attention/flash_attention.cuh"
#include "kernels/cuda/context.h"

namespace ds::cuda {

enum class AttentionKernel {
  kFlashBf16,  // q/k/v rounded to bf16 (converted per head group into arena scratch), f32 softmax/accumulate
  kNaiveF32,   // the f32 reference kernel: exact to f32 rounding, far slower
};

// o[Nq, H, dh] = softmax(q·kᵀ·scale)·v; each of q/k/v/o F32 or BF16 (BF16 q/k/v are read in place,
// F32 ones converted per head group, a BF16 o written directly). kFlashBf16 falls back to the naive
// kernel for head dims it does not take (it takes 32, 64, 128), o rows not aligned to element
// pairs, or BF16 inputs not 16-byte aligned; `flash` picks its configuration per head dim.
// Whether kFlashBf16 runs the flash kernel for these tensors (else it falls back to the naive one).
bool AttentionRunsFlash(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o);

Status Attention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale, const Tensor& o,
                 AttentionKernel kernel, const flash::Choice& flash = {});

}  // namespace ds::cuda
