// Creates the backend a user asked for by name.
#pragma once

#include <memory>
#include <string_view>

#include "core/backend.h"
#include "core/status.h"

namespace ds {

// What "auto" means for the model being loaded: a model whose large tensors live in the backend's
// memory (the Wan2.1 transformer) runs on a GPU when one is present and on the CPU otherwise; one
// that would be staged op by op (the bundled demo DiT) runs faster on the CPU.
enum class AutoDevice { kCpu, kGpuWhenPresent };

// A device name: "cpu" (optimized CPU), "reference" (naive oracle ops), "cuda" or "cuda:N" (the
// N-th GPU the driver reports, as CUDA_VISIBLE_DEVICES leaves them, PyTorch's spelling; "cuda" is
// "cuda:0"; an error without that GPU), or "auto" (see AutoDevice).
struct DeviceChoice {
  enum class Kind { kAuto, kCpu, kReference, kCuda } kind = Kind::kAuto;
  int cuda_index = 0;
};
// kInvalidArgument naming the accepted names for anything else (an index: decimal digits, at most
// kMaxCudaIndex).
Result<DeviceChoice> ParseDevice(std::string_view device);
inline constexpr int kMaxCudaIndex = 1023;

// The backend for a device name (ParseDevice). threads: 0 = all cores.
Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, int threads,
                                               AutoDevice auto_device = AutoDevice::kCpu);

}  // namespace ds
