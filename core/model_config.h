// The architecture of a model folder, read from its config.json (docs/model_format.md).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "core/status.h"

namespace ds {

class Config;

enum class BlockKind { kDit, kCross, kMmdit };
enum class PosKind { kRope3d, kSinCos3d };

struct DitConfig {
  BlockKind block_kind = BlockKind::kMmdit;
  int in_channels = 0, out_channels = 0;
  std::array<int, 3> patch = {1, 1, 1};  // (pt, ph, pw)
  int dim = 0, heads = 0, layers = 0, ffn = 0;
  int freq_dim = 256;
  int text_dim = 0;    // width of the text tokens fed to ctx_embed (0: no text stream)
  int pooled_dim = 0;  // width of the pooled vector (0: none)
  PosKind pos = PosKind::kRope3d;
  std::array<int, 3> rope_axes = {0, 0, 0};
  double rope_theta = 10000.0;
  bool qk_norm = true;
  bool prefix_mask_channel = false;
  float eps = 1e-6f;

  int head_dim() const { return dim / heads; }
  int patch_volume() const { return patch[0] * patch[1] * patch[2]; }
};

struct TextConfig {
  std::string vocab = "vocab.txt";
  int max_tokens = 16, dim = 0, layers = 0, heads = 0, ffn = 0;
};

struct DecoderConfig {
  std::vector<int> channels;  // conv_in out, then one entry per 2× upsampling stage
};

struct VideoConfig {
  int width = 0, height = 0, frames = 0, fps = 8;
};

struct SamplingConfig {
  int steps = 16;
  double guidance = 4.0, shift = 1.0;
  int continuation_prefix_frames = 0;  // latent frames carried over to continue a clip
};

struct ModelConfig {
  std::string family;
  VideoConfig video;
  int latent_channels = 0, downsample = 8;
  TextConfig text;
  DitConfig dit;
  DecoderConfig decoder;
  SamplingConfig sampling;
};

// Reads and validates (positive sizes, heads divide dim, rope axes sum to head_dim, …); errors name
// the file and the key.
Result<ModelConfig> ParseModelConfig(const Config& config);

}  // namespace ds
