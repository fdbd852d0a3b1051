// CUDA runtime and cuBLASLt results as Status values (never abort: a host process such as a
// GStreamer pipeline must survive a device error). The message names the call, the error and the
// source line. The messages are formatted in cuda_check.cpp: nvcc's front end rejects fmt's
// consteval format-string checks, so .cu files build Status messages without fmt.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "core/status.h"

namespace ds::cuda {

Status CudaError(cudaError_t e, const char* call, const char* file, int line);
Status CublasError(cublasStatus_t s, const char* call, const char* file, int line);

inline Status CheckCuda(cudaError_t e, const char* call, const char* file, int line) {
  return e == cudaSuccess ? Status::Ok() : CudaError(e, call, file, line);
}

inline Status CheckCublas(cublasStatus_t s, const char* call, const char* file, int line) {
  return s == CUBLAS_STATUS_SUCCESS ? Status::Ok() : CublasError(s, call, file, line);
}

}  // namespace ds::cuda

#define DS_CUDA_TRY(expr) DS_TRY(::ds::cuda::CheckCuda((expr), #expr, __FILE__, __LINE__))
#define DS_CUBLAS_TRY(expr) DS_TRY(::ds::cuda::CheckCublas((expr), #expr, __FILE__, __LINE__))
// After a <<<…>>> launch: configuration errors (grid, shared memory) surface here.
#define DS_CUDA_TRY_LAUNCH() DS_CUDA_TRY(cudaGetLastError())
