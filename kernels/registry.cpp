#include "kernels/registry.h"

#include "core/log.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/reference_backend.h"
#if DS_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace ds {

Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, int threads, AutoDevice auto_device) {
  std::unique_ptr<Backend> backend;
  // "auto" stays on the CPU for models the CUDA backend would stage op by op (slower than the CPU
  // backend for the bundled model, and TF32/bf16 numerics); device-resident ones go to the GPU.
  if (device == "auto" && auto_device == AutoDevice::kGpuWhenPresent) {
    auto gpu = CreateBackend("cuda", threads);
    if (gpu.ok()) return gpu;
    Log(LogLevel::kWarning, "device auto: {}; running on the CPU", gpu.status().message());
  }
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
