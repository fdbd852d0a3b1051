// DS_HD marks the functions shared by device code and the CPU tests: __host__ __device__ under
// nvcc, plain inline under a host compiler (which never sees a CUDA header through this file).
#pragma once

#if defined(__CUDACC__)
#define DS_HD __host__ __device__ __forceinline__
#else
#define DS_HD inline
#endif

// Loop unrolling for the device pass only (host compilers warn on the unknown pragma).
#if defined(__CUDA_ARCH__)
#define DS_UNROLL _Pragma("unroll")
#else
#define DS_UNROLL
#endif
