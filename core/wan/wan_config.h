// Wan2.1 component configurations, read from the diffusers folder layout (each component's
// config.json, reference/wan21_spec.md §1.1, §2.1, §4.1, §5.1) or derived from tensor shapes when a
// checkpoint carries the original Wan names and no config (ComfyUI single files).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "core/status.h"

namespace ds {

class Config;
class Weights;

struct WanTransformerConfig {
  std::array<int, 3> patch = {1, 2, 2};  // (pt, ph, pw)
  int heads = 12, head_dim = 128, layers = 30, ffn = 8960;
  int in_channels = 16, out_channels = 16, text_dim = 4096, freq_dim = 256;
  bool cross_attn_norm = true;
  float eps = 1e-6f;
  int rope_max_seq_len = 1024;

  int dim() const { return heads * head_dim; }
  int patch_volume() const { return patch[0] * patch[1] * patch[2]; }
  // Head-dim split of the 3D RoPE over (t, h, w): h = w = 2·(head_dim / 6), t takes the rest.
  std::array<int, 3> rope_axes() const;
};

// Wan2.1 T2V 1.3B and 14B (spec §2.1), the shapes benchmarks and memory estimates use.
WanTransformerConfig Wan13BConfig();
WanTransformerConfig Wan14BConfig();

struct WanVaeConfig {
  int base_dim = 96, z_dim = 16, num_res_blocks = 2, out_channels = 3;
  std::vector<int> dim_mult = {1, 2, 4, 4};
  std::vector<bool> temporal_downsample = {false, true, true};
  std::vector<float> latents_mean, latents_std;  // z_dim each

  // Decoder widths: conv_in/mid, then the output width of each up block.
  std::vector<int> decoder_dims() const;
  int temporal_factor() const;  // 4 for Wan2.1: 1 + 4·(T − 1) frames from T latent frames
  int spatial_factor() const;   // 8
};

struct Umt5Config {
  int vocab = 0, d_model = 0, layers = 0, heads = 0, d_kv = 0, d_ff = 0;
  int buckets = 32, max_distance = 128;
  float eps = 1e-6f;
  int inner() const { return heads * d_kv; }
};

// The sampler a Wan folder's scheduler/ declares. Both predict flow; UniPC is the published default.
struct WanSchedulerConfig {
  enum class Kind { kUniPc, kFlowEuler };
  Kind kind = Kind::kUniPc;
  double shift = 3.0;
  int train_timesteps = 1000;
};

Result<WanTransformerConfig> ParseWanTransformerConfig(const Config& c);
// From a checkpoint with original Wan names (patch_embedding, blocks.N.modulation, head.head, ...):
// sizes from the tensor shapes; the head count from the original WanModel config.json when given
// (`num_heads`), else from Wan's 128-wide heads.
Result<WanTransformerConfig> WanTransformerConfigFromShapes(const Weights& w, const std::string& prefix,
                                                            const Config* original_config);
Result<WanVaeConfig> ParseWanVaeConfig(const Config& c);
// The published Wan2.1 VAE, with base_dim and z_dim read from a checkpoint with original names.
Result<WanVaeConfig> WanVaeConfigFromShapes(const Weights& w);
Result<Umt5Config> ParseUmt5Config(const Config& c);
Result<WanSchedulerConfig> ParseWanSchedulerConfig(const Config& c);

// The Wan2.1 latent normalisation constants (identical in diffusers and the original code).
const std::vector<float>& Wan21LatentsMean();
const std::vector<float>& Wan21LatentsStd();

}  // namespace ds
