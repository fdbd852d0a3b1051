// Random Wan2.1 transformer and VAE checkpoints in the diffusers layout (config.json + one BF16
// safetensors file, the real tensor names and shapes): for benchmarks that need the 1.3B's shapes
// without its 5.7 GB download.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/wan/wan_config.h"

namespace ds::bench {

struct RandomTensor {
  std::string name;
  std::vector<int64_t> shape;
  float scale;  // std of the normal values; < 0: constant 1 (norm weights)
};

// One BF16 safetensors file of seeded random tensors (half the bytes of F32; enough for timing).
Status WriteRandomSafetensors(const std::string& path, const std::vector<RandomTensor>& tensors);

// Writes dir/config.json and dir/diffusion_pytorch_model.safetensors for the 1.3B's widths with
// `layers` blocks (30 in the real model). Values ~ N(0, small); norm weights 1.
Status WriteRandomWan13B(const std::string& dir, int layers);
// The same for any transformer config (e.g. Wan14BConfig()), with `layers` of its blocks.
Status WriteRandomWan(const std::string& dir, const WanTransformerConfig& config, int layers);

// Writes dir/config.json and dir/diffusion_pytorch_model.safetensors: the published Wan2.1 VAE
// decoder's widths (base_dim 96) in diffusers names, seeded random values scaled per fan-in.
Status WriteRandomWanVae(const std::string& dir);

}  // namespace ds::bench
