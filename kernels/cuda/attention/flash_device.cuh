// What both flash kernels (flash_attention.cu's mma.sync one and flash_hopper.cu's wgmma one)
// share: the cp.async wrappers, the quad reductions of the softmax, and the launch and resource
// query of one block of `threads` threads and `smem` bytes of dynamic shared memory per (query
// tile of block_m queries, head). Device-code translation units only.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/attention/flash_attention.cuh"
#include "kernels/cuda/cuda_check.h"

namespace ds::cuda::flash {

// ---- PTX wrappers ----------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared, bypassing L1. A source size of 0 writes 16 zero bytes: the rows past
// the end of a partial tile read nothing and hold zeros (finite, then masked or ignored).
__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most kPending of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// A row's max and sum over the four lanes of a quad, which hold it between them (FragC).
__device__ __forceinline__ float QuadMax(float v) {
  v = Max(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return Max(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float QuadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// ---- launch ----------------------------------------------------------------------------------------

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
