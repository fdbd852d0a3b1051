#include "kernels/registry.h"

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/reference_backend.h"
#if DS_HAVE_CUDA
#include "core/log.h"
#include "kernels/cuda/cuda_backend.h"
#endif

namespace ds {

Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, int threads) {
  std::unique_ptr<Backend> backend;
  if (device == "cuda" || device == "auto") {
#if DS_HAVE_CUDA
    // "auto": CUDA when a usable device is present, else the CPU.
    auto cuda = CudaBackend::Create();
    if (cuda.ok()) {
      std::unique_ptr<Backend> gpu = std::move(cuda).value();
      gpu->set_threads(threads);
      return gpu;
    }
    if (device == "cuda") return Error(cuda.status().code(), "device \"cuda\": {}", cuda.status().message());
    Log(LogLevel::kInfo, "device \"auto\": using the CPU ({})", cuda.status().message());
#else
    if (device == "cuda") return Error(Code::kUnsupported, "device \"cuda\": this build has no CUDA backend");
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
