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

// device: "cpu" (optimized CPU), "reference" (naive oracle ops), "cuda" (an error without a usable
// GPU), or "auto" (see AutoDevice). threads: 0 = all cores.
Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, int threads,
                                               AutoDevice auto_device = AutoDevice::kCpu);

}  // namespace ds
