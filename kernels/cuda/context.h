// What every CUDA entry point needs: the stream it enqueues on, the arena for scratch, the
// cuBLASLt handle and the device's properties. Owned by CudaBackend; entry points borrow it.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <string>

#include "kernels/cuda/arena.h"
#include "kernels/cuda/autotune.h"
#include "kernels/cuda/tuning_cache.h"

namespace ds::cuda {

class GemmPlans;

struct Context {
  cudaStream_t stream = nullptr;
  Arena* arena = nullptr;
  cublasLtHandle_t lt = nullptr;
  GemmPlans* plans = nullptr;
  void* lt_workspace = nullptr;  // cuBLASLt split-K / stream-K workspace, from the arena
  size_t lt_workspace_bytes = 0;
  bool tf32 = true;  // f32 GEMMs on tensor cores with TF32 inputs (10-bit mantissa), f32 accumulate
  Autotune gemm_autotune = Autotune::kRecorded;       // which new GEMM plans time candidates
  Autotune attention_autotune = Autotune::kRecorded;  // which new attention shapes time kernels
  bool issuing_recording = false;                     // inside Backend::RunRecorded's ops (the repeated ones)
  TuningCache* tuning_cache = nullptr;                // timed choices kept on disk; null: none
  std::string device_key;                             // the device and the libraries' versions, for the cache's keys
  int sm_count = 0;
  int cc = 0;  // compute capability, 10·major + minor
};

// Takes scratch from the arena for the duration of one op and gives it back on scope exit.
class Scratch {
 public:
  explicit Scratch(const Context& ctx) : arena_(*ctx.arena), mark_(arena_.Mark()) {}
  ~Scratch() { arena_.Release(mark_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  Result<void*> Allocate(size_t bytes, const char* what) { return arena_.Allocate(bytes, what); }

 private:
  Arena& arena_;
  size_t mark_;
};

}  // namespace ds::cuda
