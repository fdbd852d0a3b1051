// Text-to-video generation: prompt → text embeddings (cached) → seeded noise → flow-Euler denoising
// with classifier-free guidance → frame-by-frame decoding, each frame handed out as soon as it
// exists. Clips can continue the previous clip's motion through prefix-frame conditioning.
// This is the bundled model family's pipeline and the family dispatch: a Wan2.1 folder is handed
// to WanPipeline.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/model.h"
#include "core/status.h"
#include "pipelines/generation.h"
#include "pipelines/options.h"
#include "pipelines/prompt_cache.h"
#include "pipelines/wan_pipeline.h"

namespace ds {

// Resolves a model option to a folder: an existing path, or the name of a model folder (config.json,
// or a diffusers model_index.json) searched in $DITSTREAM_MODELS, the source tree's models/ and the
// installed data folder.
Result<std::string> ResolveModelFolder(const std::string& model);

class TextToVideo {
 public:
  static Result<std::unique_ptr<TextToVideo>> Load(const Options& opts);

  const ModelInfo& info() const { return info_; }
  Backend& backend() { return *backend_; }
  Result<OutputShape> Shape(const Options& opts) const;

  // Prompt embeddings for reuse (WanPipeline::SaveEmbeddings / LoadEmbeddings); kUnsupported for the
  // demo family, whose text encoder is a small part of the model.
  Status SaveEmbeddings(const Options& opts, const std::string& path);
  Result<PromptEmbeddings> LoadEmbeddings(const std::string& path);

  // Frames reach on_frame in `format`. cancel is polled between steps and frames.
  Status Generate(const Options& opts, bool continue_previous, FrameFormat format, const FrameFn& on_frame,
                  const ProgressFn& on_progress, const std::atomic<bool>& cancel);
  // ds_seek: the next Generate starts a new stream that hands out frames from `frame` on.
  void Seek(int64_t frame);

 private:
  TextToVideo(std::unique_ptr<Model> model, std::unique_ptr<Backend> backend);
  TextToVideo(std::unique_ptr<WanPipeline> wan, std::unique_ptr<Backend> backend)
      : backend_(std::move(backend)), wan_(std::move(wan)), info_(wan_->Info()) {}
  const ModelConfig& config() const { return model_->config(); }
  // The prompt's embedding, cached; `keep`: a prompt whose cached embedding the caller holds.
  Result<const TextEmbedding*> Embed(const std::string& prompt, const std::string* keep);
  Status Denoise(const Options& opts, const OutputShape& shape, int prefix, const std::atomic<bool>& cancel,
                 const ProgressFn& on_progress, int clip);

  std::unique_ptr<Model> model_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<WanPipeline> wan_;  // set instead of model_ for a Wan2.1 folder
  ModelInfo info_;
  PromptCache<TextEmbedding> text_cache_{8};
  std::vector<float> latent_, velocity_, velocity_uncond_, dit_in_, dit_in_uncond_, frame_latent_, rgb_planar_;
  std::vector<uint8_t> pixels_;
  // The previous clip, kept for continuation.
  std::vector<float> previous_;
  OutputShape previous_shape_ = {0, 0, 0};
  StreamPosition position_;
};

}  // namespace ds
