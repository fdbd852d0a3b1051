// Flash attention forward (FlashAttention-2 style) on tensor cores: mma.sync m16n8k16 with bf16
// q/k/v and f32 accumulation, online softmax, K/V tiles double-buffered through shared memory by
// cp.async. Non-causal, no mask, head dims 32/64/128, sm_80 and newer. The tile constants live in
// flash::Traits (flash_layout.h); the readable reference is naive_attention.cu.
#pragma once

#include <cuda_runtime_api.h>

#include "core/status.h"
#include "kernels/cuda/attention/flash_layout.h"

namespace ds::cuda::flash {

bool SupportsHeadDim(int head_dim);

// Why p cannot run (head dim, alignment), or Ok. q/k/v rows must be 16-byte aligned (base and
// strides multiples of 8 elements), o rows 8-byte aligned.
Status Check(const Params& p, int head_dim);

// kUnsupported when this build carries no kernel image (SASS or PTX) the current device can run.
Status CheckKernelImage();

// Enqueues o = softmax(q·kᵀ·scale)·v on `stream` (p.scale_log2 = scale·log2 e).
Status Forward(const Params& p, int head_dim, cudaStream_t stream);

}  // namespace ds::cuda::flash
