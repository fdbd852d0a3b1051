// Text-to-video generation: prompt → text embeddings (cached) → seeded noise → flow-Euler denoising
// with classifier-free guidance → frame-by-frame decoding, each frame handed out as soon as it
// exists. Clips can continue the previous clip's motion through prefix-frame conditioning.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/model.h"
#include "core/status.h"
#include "pipelines/options.h"

namespace ds {

struct FrameView {
  const uint8_t* rgb;
  int width, height;
  int64_t index;
  int clip;
};
struct Progress {
  ds_stage stage;
  int step, total, clip;
};
// Returning false stops generation with kCancelled.
using FrameFn = std::function<bool(const FrameView&)>;
using ProgressFn = std::function<void(const Progress&)>;

struct OutputShape {
  int width, height, frames;
};

// Resolves a model option to a folder: an existing path, or the name of a bundled model searched in
// $DITSTREAM_MODELS, the source tree's models/ and the installed data folder.
Result<std::string> ResolveModelFolder(const std::string& model);

class TextToVideo {
 public:
  static Result<std::unique_ptr<TextToVideo>> Load(const Options& opts);

  const ModelConfig& config() const { return model_->config(); }
  Backend& backend() { return *backend_; }
  Result<OutputShape> Shape(const Options& opts) const;

  // cancel is polled between steps and frames.
  Status Generate(const Options& opts, bool continue_previous, const FrameFn& on_frame,
                  const ProgressFn& on_progress, const std::atomic<bool>& cancel);

 private:
  TextToVideo(std::unique_ptr<Model> model, std::unique_ptr<Backend> backend)
      : model_(std::move(model)), backend_(std::move(backend)) {}
  Result<const TextEmbedding*> Embed(const std::string& prompt);
  Status Denoise(const Options& opts, const OutputShape& shape, int prefix, const std::atomic<bool>& cancel,
                 const ProgressFn& on_progress, int clip);

  std::unique_ptr<Model> model_;
  std::unique_ptr<Backend> backend_;
  std::map<std::string, TextEmbedding> text_cache_;
  std::vector<float> latent_, velocity_, velocity_uncond_, dit_in_, dit_in_uncond_, frame_latent_, rgb_planar_;
  std::vector<uint8_t> rgb8_;
  // The previous clip, kept for continuation.
  std::vector<float> previous_;
  OutputShape previous_shape_ = {0, 0, 0};
  int clip_ = 0;
  int64_t frames_emitted_ = 0;
};

}  // namespace ds
