#include "kernels/registry.h"

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/reference_backend.h"
#if DS_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace ds {

Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, int threads) {
  std::unique_ptr<Backend> backend;
  // "auto" stays on the CPU until the engine keeps its tensors on the device: today the CUDA
  // backend stages every op's host tensors through device memory, which is slower than the CPU
  // backend for the bundled model and changes numerics (TF32, bf16 attention). "cuda" asks for it.
  if (device == "cuda") {
#if DS_HAVE_CUDA
    auto cuda = CudaBackend::Create();
    if (!cuda.ok()) return Error(cuda.status().code(), "device \"cuda\": {}", cuda.status().message());
    std::unique_ptr<Backend> gpu = std::move(cuda).value();
    gpu->set_threads(threads);
    return gpu;
#else
    return Error(Code::kUnsupported, "device \"cuda\": this build has no CUDA backend");
#endif
  }
  if (device == "cpu" || device == "auto") {
    backend = std::make_unique<CpuBackend>();
  } else if (device == "reference") {
    backend = std::make_unique<ReferenceBackend>();
  } else {
    return Error(Code::kInvalidArgument,
                 "unknown device \"{}\" (accepted: cpu, cuda, reference, auto)", device);
  }
  backend->set_threads(threads);
  return backend;
}

}  // namespace ds
