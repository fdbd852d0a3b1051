#include "kernels/cuda/cuda_check.h"

namespace ds::cuda {

Status CudaError(cudaError_t e, const char* call, const char* file, int line) {
  const Code code = e == cudaErrorMemoryAllocation ? Code::kOutOfMemory : Code::kInternal;
  return Error(code, "{}: {} ({}) at {}:{}", call, cudaGetErrorName(e), cudaGetErrorString(e), file, line);
}

Status CublasError(cublasStatus_t s, const char* call, const char* file, int line) {
  const Code code = s == CUBLAS_STATUS_ALLOC_FAILED    ? Code::kOutOfMemory
                    : s == CUBLAS_STATUS_NOT_SUPPORTED ? Code::kUnsupported
                                                       : Code::kInternal;
  return Error(code, "{}: {} ({}) at {}:{}", call, cublasLtGetStatusName(s), cublasLtGetStatusString(s), file, line);
}

}  // namespace ds::cuda
