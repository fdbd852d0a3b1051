// Creates the backend a user asked for by name.
#pragma once

#include <memory>
#include <string_view>

#include "core/backend.h"
#include "core/status.h"

namespace ds {

// device: "cpu" (optimized CPU), "reference" (naive oracle ops), "cuda", or "auto" (CUDA when a
// device is present, else CPU). threads: 0 = all cores.
Result<std::unique_ptr<Backend>> CreateBackend(std::string_view device, int threads);

}  // namespace ds
