#include "kernels/registry.h"

#include <charconv>
#include <system_error>

#include "core/log.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/reference_backend.h"
#if DS_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace ds {

Result<DeviceChoice> ParseDevice(std::string_view device) {
  using Kind = DeviceChoice::Kind;
  if (device == "auto") return DeviceChoice{Kind::kAuto, 0};
  if (device == "cpu") return DeviceChoice{Kind::kCpu, 0};
  if (device == "reference") return DeviceChoice{Kind::kReference, 0};
  if (device == "cuda") return DeviceChoice{Kind::kCuda, 0};
  constexpr std::string_view kCudaPrefix = "cuda:";
  if (device.substr(0, kCudaPrefix.size()) == kCudaPrefix) {
    // Decimal digits only: from_chars into an unsigned takes no sign, space or fraction.
    const std::string_view digits = device.substr(kCudaPrefix.size());
    unsigned index = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (!digits.empty() && error == std::errc() && end == digits.data() + digits.size() &&
        index <= static_cast<unsigned>(kMaxCudaIndex)) {
      return DeviceChoice{Kind::kCuda, static_cast<int>(index)};
    }
    return Error(Code::kInvalidArgument, "device \"{}\": the GPU index after \"cuda:\" must be a number from 0 to {}",
                 device, kMaxCudaIndex);
  }
  return Error(Code::kInvalidArgument, "unknown device \"{}\" (accepted: auto, cpu, cuda, cuda:N, reference)", device);
}

namespace {

Result<std::unique_ptr<Backend>> CreateCuda(std::string_view device, int index, int threads) {
#if DS_HAVE_CUDA
  CudaOptions options;
  options.device = index;
  auto cuda = CudaBackend::Create(options);
  if (!cuda.ok()) return Error(cuda.status().code(), "device \"{}\": {}", device, cuda.status().message());
  std::unique_ptr<Backend> gpu = std::move(cuda).value();
  gpu->set_threads(threads);
  return gpu;
#else
  (void)index;
  (void)threads;
  return Error(Code::kUnsupported, "device \"{}\": this build has no CUDA backend", device);
#endif
}

}  // namespace

Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, int threads, AutoDevice auto_device) {
  DS_ASSIGN_OR_RETURN(const DeviceChoice choice, ParseDevice(device));
  using Kind = DeviceChoice::Kind;
  // "auto" stays on the CPU for models the CUDA backend would stage op by op (slower than the CPU
  // backend for the bundled model, and TF32/bf16 numerics); device-resident ones go to the GPU.
  if (choice.kind == Kind::kAuto && auto_device == AutoDevice::kGpuWhenPresent) {
    auto gpu = CreateCuda("cuda", 0, threads);
    if (gpu.ok()) return gpu;
    Log(LogLevel::kWarning, "device auto: {}; running on the CPU", gpu.status().message());
  }
  if (choice.kind == Kind::kCuda) return CreateCuda(device, choice.cuda_index, threads);
  std::unique_ptr<Backend> backend;
  if (choice.kind == Kind::kReference) {
    backend = std::make_unique<ReferenceBackend>();
  } else {
    backend = std::make_unique<CpuBackend>();
  }
  backend->set_threads(threads);
  return backend;
}

}  // namespace ds
