// A random Wan2.1 transformer checkpoint in the diffusers layout (config.json + one BF16
// safetensors file, the real tensor names and shapes): for benchmarks that need the 1.3B's shapes
// without its 5.7 GB download.
#pragma once

#include <string>

#include "core/status.h"

namespace ds::bench {

// Writes dir/config.json and dir/diffusion_pytorch_model.safetensors for the 1.3B's widths with
// `layers` blocks (30 in the real model). Values ~ N(0, small); norm weights 1.
Status WriteRandomWan13B(const std::string& dir, int layers);

}  // namespace ds::bench
