// A Wan2.1 text-to-video model in the diffusers folder layout (reference/wan21_spec.md §3):
// model_index.json + tokenizer/, text_encoder/, transformer/, vae/, scheduler/. Also Wan2.2's
// two-stage text-to-video models (T2V-A14B): the same components and a second transformer,
// transformer_2/, the low-noise expert, which takes the steps whose timestep is below
// boundary_ratio (model_index.json) · the scheduler's training timesteps.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/backend.h"
#include "core/status.h"
#include "core/wan/umt5.h"
#include "core/wan/wan_config.h"
#include "core/wan/wan_tokenizer.h"
#include "core/wan/wan_transformer.h"
#include "core/wan/wan_vae.h"

namespace ds {

// The published defaults of the Wan2.1 T2V pipeline (diffusers WanPipeline, §5.1).
struct WanDefaults {
  static constexpr int kWidth = 832, kHeight = 480, kFrames = 81, kFps = 16, kSteps = 50, kTextLen = 512;
  static constexpr double kGuidance = 5.0;
  static constexpr int kSizeMultiple = 16;  // VAE ×8, then the DiT's 2×2 patch
};

class WanModel {
 public:
  // True when folder/model_index.json exists and declares a Wan pipeline (for family dispatch).
  static bool IsWanFolder(const std::string& folder);
  // loras: merged into the transformer as it loads (wan_lora.h); loras_2: into transformer_2, and an
  // error for a model without one.
  static Result<std::unique_ptr<WanModel>> Load(const std::string& folder, const std::vector<LoraSpec>& loras = {},
                                                const std::vector<LoraSpec>& loras_2 = {});

  const std::string& folder() const { return folder_; }
  WanTokenizer& tokenizer() { return tokenizer_; }
  Umt5Encoder& text_encoder() { return text_; }
  WanTransformer& transformer() { return transformer_; }
  const WanTransformer& transformer() const { return transformer_; }
  // The low-noise expert of a two-stage model; null for one transformer.
  WanTransformer* transformer_2() { return transformer_2_.get(); }
  const WanTransformer* transformer_2() const { return transformer_2_.get(); }
  // The first timestep (in the scheduler's 0..train_timesteps scale) below which transformer_2 runs;
  // 0 for one transformer.
  double boundary_timestep() const { return boundary_ratio_ * scheduler_.train_timesteps; }
  WanVaeDecoder& vae() { return vae_; }
  const WanVaeDecoder& vae() const { return vae_; }
  const WanSchedulerConfig& scheduler() const { return scheduler_; }

  // Latent shape {channels, frames, height, width} of a width x height x frames video, or an error
  // saying what the sizes must be (multiples of 16, frames = 4k + 1).
  Result<std::array<int, 4>> LatentShape(int width, int height, int frames) const;

  // The pipeline's prompt embeddings: tokens (≤ text_len incl. </s>) → UMT5 → rows [L, text_len)
  // set to exact zeros. out: [text_len, d_model].
  Status EncodePrompt(Backend& be, std::string_view prompt, int text_len, std::vector<float>& out);

 private:
  WanModel(std::string folder, WanTokenizer tokenizer, Umt5Encoder text, WanTransformer transformer, WanVaeDecoder vae,
           WanSchedulerConfig scheduler)
      : folder_(std::move(folder)),
        tokenizer_(std::move(tokenizer)),
        text_(std::move(text)),
        transformer_(std::move(transformer)),
        vae_(std::move(vae)),
        scheduler_(scheduler) {}

  std::string folder_;
  WanTokenizer tokenizer_;
  Umt5Encoder text_;
  WanTransformer transformer_;
  std::unique_ptr<WanTransformer> transformer_2_;
  double boundary_ratio_ = 0;
  WanVaeDecoder vae_;
  WanSchedulerConfig scheduler_;
};

}  // namespace ds
