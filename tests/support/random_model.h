// Writes a complete model folder (config.json, model.safetensors, vocab.txt) with seeded random
// weights, for engine tests that must not depend on the trained demo model.
#pragma once

#include <cstdint>
#include <string>

#include "core/model_config.h"

namespace ds::testing {

struct RandomModelSpec {
  std::string block_kind = "mmdit";  // dit, cross, mmdit
  std::string pos = "rope3d";        // rope3d, sincos3d
  int dim = 48, heads = 2, layers = 2, ffn = 96;
  int latent_channels = 4;
  int text_dim = 32, text_layers = 1, text_heads = 2;
  int width = 32, height = 32, frames = 4, fps = 8;
  int steps = 3;
  double guidance = 3.0;
  float weight_scale = 0.2f;
};

// Returns an empty string on success, else the error.
std::string WriteRandomModel(const std::string& folder, const RandomModelSpec& spec, uint64_t seed);

// Writes tensors (name → float32 data with shape) as a safetensors file.
struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};
std::string WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors);

}  // namespace ds::testing
