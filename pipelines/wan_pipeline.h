// Text-to-video with a Wan2.1 checkpoint (reference/wan21_spec.md §5, diffusers WanPipeline):
// prompt and negative prompt → UMT5 (embeddings cached; the encoder's pages released before the DiT
// runs) → seeded noise → the folder's scheduler (UniPC or flow Euler) with classifier-free guidance
// → the causal VAE, decoded one latent frame at a time, each video frame handed out as it exists.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/status.h"
#include "core/wan/wan_model.h"
#include "pipelines/generation.h"
#include "pipelines/options.h"
#include "pipelines/prompt_cache.h"
#include "pipelines/prompt_embeddings.h"

namespace ds {

class WanPipeline {
 public:
  // text_len: rows of prompt context, 512 as Wan2.1 was trained; parity tests pass their reference's.
  // loras: adapters merged into the transformer (core/wan/wan_lora.h); loras_2: into a two-stage
  // model's transformer_2.
  static Result<std::unique_ptr<WanPipeline>> Load(const std::string& folder, Backend& backend,
                                                   int text_len = WanDefaults::kTextLen,
                                                   const std::vector<LoraSpec>& loras = {},
                                                   const std::vector<LoraSpec>& loras_2 = {});

  WanModel& model() { return *model_; }
  ModelInfo Info() const;
  // The options' size with the native size filled in, or an error naming the option and what it may be.
  Result<OutputShape> Shape(const Options& opts) const;

  // Wan has no prefix-frame conditioning (ModelInfo::continuation_prefix_frames is 0): a continued
  // clip starts afresh from its own noise, a cut, and numbers its frames on from the previous clip.
  Status Generate(const Options& opts, bool continue_previous, FrameFormat format, const FrameFn& on_frame,
                  const ProgressFn& on_progress, const std::atomic<bool>& cancel);
  // ds_seek: the next Generate starts a new stream at the clip of frame `frame` (the clips before
  // it are not made) and hands out frames from `frame` on.
  void Seek(int64_t frame) { position_.SeekTo(frame); }

  // Prompt embeddings for reuse: SaveEmbeddings encodes opts' prompt and negative prompt (or takes
  // them from the cache) and writes them; LoadEmbeddings reads such a file into the cache and
  // returns it, so generating with its prompts never runs the text encoder.
  Status SaveEmbeddings(const Options& opts, const std::string& path);
  Result<PromptEmbeddings> LoadEmbeddings(const std::string& path);

  // The two halves of Generate, public so that a parity test can start from a reference's noise.
  // latent: [C, T, H, W] as model().LatentShape gives it; the initial noise in, the sample out.
  Status Denoise(const Options& opts, std::vector<float>& latent, const OutputShape& shape, int clip,
                 const ProgressFn& on_progress, const std::atomic<bool>& cancel);
  // Decodes the sample (de-normalising it in place); on_frame receives each video frame as planar
  // RGB [3, height, width] in [-1, 1], valid during the call, and may stop decoding with an error.
  // vae_tiling is the option's value (auto, on, off): streamed frame by frame, or in spatial tiles
  // (core/wan/wan_vae_tiling.h) when asked or when streaming would exceed the backend's
  // WorkingSetBudget.
  using PlanarFrameFn = std::function<Status(const float* rgb)>;
  Status Decode(std::vector<float>& latent, const OutputShape& shape, int clip, const std::string& vae_tiling,
                const PlanarFrameFn& on_frame, const ProgressFn& on_progress, const std::atomic<bool>& cancel);
  // Decode for 8-bit frames: on_frame receives each as `format` bytes (core/frame.h), converted on
  // the backend while streaming, on the host from the blended float frame when tiled.
  using PixelFrameFn = std::function<Status(const uint8_t* pixels)>;
  Status DecodePixels(std::vector<float>& latent, const OutputShape& shape, int clip, const std::string& vae_tiling,
                      FrameFormat format, const PixelFrameFn& on_frame, const ProgressFn& on_progress,
                      const std::atomic<bool>& cancel);

 private:
  WanPipeline(std::unique_ptr<WanModel> model, Backend& backend, int text_len)
      : model_(std::move(model)), backend_(&backend), text_len_(text_len) {}
  // Embeddings [text_len, d] of the prompt, from the cache or encoded; *encoded says which. `keep`:
  // a prompt whose cached embeddings the caller holds.
  Result<const std::vector<float>*> Embed(const std::string& prompt, const std::string* keep, bool* encoded);
  // After a transformer's last step of a clip: logs what its first-block cache skipped, frees its
  // activations, and, in a two-stage model, its weights in the backend's memory.
  void StageDone(WanTransformer& dit, int clip);
  // Decode and DecodePixels: exactly one of planar and pixels is set.
  Status DecodeFrames(std::vector<float>& latent, const OutputShape& shape, int clip, const std::string& vae_tiling,
                      const PlanarFrameFn* planar, FrameFormat format, const PixelFrameFn* pixels,
                      const ProgressFn& on_progress, const std::atomic<bool>& cancel);

  std::unique_ptr<WanModel> model_;
  Backend* backend_;
  int text_len_;
  PromptCache<std::vector<float>> text_cache_{8};
  std::vector<float> latent_, velocity_, velocity_uncond_, frame_latent_;
  std::vector<uint8_t> pixels_;  // a tiled decode's frame, converted on the host
  StreamPosition position_;
  bool warned_guidance_2_ = false;  // guidance-2 set for a one-transformer model: said once
};

}  // namespace ds
