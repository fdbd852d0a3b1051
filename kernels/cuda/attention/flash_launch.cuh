// The launch and the resource query both flash kernels (flash_attention.cu's mma.sync one and
// flash_hopper.cu's wgmma one) share: one block of `threads` threads and `smem` bytes of dynamic
// shared memory per (query tile of block_m queries, head). Device-code translation units only.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/attention/flash_attention.cuh"
#include "kernels/cuda/cuda_check.h"

namespace ds::cuda::flash {

template <class Kernel>
Status LaunchFlashKernel(Kernel kernel, int block_m, int threads, int smem, const Params& p, cudaStream_t stream) {
  DS_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid(static_cast<unsigned>(CeilDiv(p.nq, block_m)), static_cast<unsigned>(p.heads));
  kernel<<<grid, threads, smem, stream>>>(p);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

template <class Kernel>
Result<KernelResources> FlashKernelResources(Kernel kernel, int threads, int smem) {
  cudaFuncAttributes a;
  DS_CUDA_TRY(cudaFuncGetAttributes(&a, kernel));
  DS_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  int blocks = 0;
  DS_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, smem));
  return KernelResources{a.numRegs, static_cast<int>(a.localSizeBytes), blocks};
}

}  // namespace ds::cuda::flash
