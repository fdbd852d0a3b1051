#include "pipelines/text_to_video.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "core/log.h"
#include "kernels/registry.h"
#include "pipelines/flow_sampler.h"
#include "pipelines/noise.h"
#include "pipelines/scheduler.h"

namespace ds {
namespace {

constexpr int kMinSide = 32, kMaxSide = 256, kMaxFrames = 64;

}  // namespace

Result<std::string> ResolveModelFolder(const std::string& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool looks_like_path = model.find('/') != std::string::npos || model.starts_with(".");
  if (looks_like_path || fs::exists(model, ec)) {
    if (!fs::is_directory(model, ec)) {
      if (fs::exists(model, ec)) return Error(Code::kIo, "model '{}' is a file, not a model folder", model);
      return Error(Code::kIo, "model folder '{}' does not exist", model);
    }
    return model;
  }
  std::vector<std::string> roots;
  if (const char* env = std::getenv("DITSTREAM_MODELS")) roots.emplace_back(env);
  roots.emplace_back(DS_MODELS_BUILD_DIR);
  roots.emplace_back(DS_MODELS_INSTALL_DIR);
  for (const std::string& root : roots) {
    const fs::path p = fs::path(root) / model;
    if (fs::is_regular_file(p / "config.json", ec)) return p.string();
    if (fs::is_regular_file(p / "model_index.json", ec)) return p.string();  // a diffusers folder (Wan2.1)
  }
  return Error(Code::kIo, "model '{}' is neither a folder nor a bundled model (searched $DITSTREAM_MODELS, {}, {})",
               model, DS_MODELS_BUILD_DIR, DS_MODELS_INSTALL_DIR);
}

Result<std::unique_ptr<TextToVideo>> TextToVideo::Load(const Options& opts) {
  namespace fs = std::filesystem;
  DS_ASSIGN_OR_RETURN(std::string folder, ResolveModelFolder(opts.model));
  DS_ASSIGN_OR_RETURN(std::vector<LoraSpec> loras, ParseLoras(opts.lora));
  DS_ASSIGN_OR_RETURN(std::vector<LoraSpec> loras_2, ParseLoras(opts.lora_2));
  std::error_code ec;
  // Any diffusers folder goes to WanModel, even one of another pipeline: its error then names it.
  if (WanModel::IsWanFolder(folder) || fs::is_regular_file(fs::path(folder) / "model_index.json", ec)) {
    DS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                        CreateBackend(opts.device, opts.threads, AutoDevice::kGpuWhenPresent));
    DS_ASSIGN_OR_RETURN(std::unique_ptr<WanPipeline> wan,
                        WanPipeline::Load(folder, *backend, WanDefaults::kTextLen, loras, loras_2));
    Log(LogLevel::kInfo, "loaded model {} ({}) on the {} backend", folder, wan->Info().family, backend->name());
    return std::unique_ptr<TextToVideo>(new TextToVideo(std::move(wan), std::move(backend)));
  }
  if (!fs::exists(fs::path(folder) / "config.json", ec)) {
    return Error(Code::kIo,
                 "'{}' holds no model: neither config.json (a ditstream model folder) nor model_index.json (a "
                 "Wan2.1 folder in the diffusers layout)",
                 folder);
  }
  if (!loras.empty() || !loras_2.empty()) {
    return Error(Code::kUnsupported, "option '{}': LoRA files apply to Wan models; '{}' is a ditstream model folder",
                 loras.empty() ? "lora-2" : "lora", folder);
  }
  DS_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(folder));
  DS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(opts.device, opts.threads));
  Log(LogLevel::kInfo, "loaded model {} ({}) on the {} backend", folder, model->config().family, backend->name());
  return std::unique_ptr<TextToVideo>(new TextToVideo(std::move(model), std::move(backend)));
}

TextToVideo::TextToVideo(std::unique_ptr<Model> model, std::unique_ptr<Backend> backend)
    : model_(std::move(model)), backend_(std::move(backend)) {
  const ModelConfig& c = config();
  ModelInfo& info = info_;
  info.family = c.family;
  info.native_width = c.video.width;
  info.native_height = c.video.height;
  info.native_frames = c.video.frames;
  info.fps = c.video.fps;
  info.min_side = kMinSide;
  info.max_side = kMaxSide;
  info.side_step = c.downsample * c.dit.patch[1];
  info.min_frames = c.dit.patch[0];
  info.max_frames = kMaxFrames;
  info.frames_step = c.dit.patch[0];
  info.default_steps = c.sampling.steps;
  info.default_guidance = c.sampling.guidance;
  info.default_shift = c.sampling.shift;
  info.continuation_prefix_frames = c.sampling.continuation_prefix_frames;
}

Result<OutputShape> TextToVideo::Shape(const Options& opts) const {
  if (wan_) return wan_->Shape(opts);
  const ModelConfig& c = config();
  OutputShape s{opts.width ? opts.width : c.video.width, opts.height ? opts.height : c.video.height,
                opts.frames ? opts.frames : c.video.frames};
  const int step = c.downsample * c.dit.patch[1];
  for (auto [name, v] : {std::pair{"width", s.width}, {"height", s.height}}) {
    if (v < kMinSide || v > kMaxSide || v % step != 0) {
      return Error(Code::kUnsupported, "{} {} is not supported by model {} ({}): use a multiple of {} from {} to {}",
                   name, v, model_->folder(), c.family, step, kMinSide, kMaxSide);
    }
  }
  if (s.frames < c.dit.patch[0] || s.frames > kMaxFrames || s.frames % c.dit.patch[0] != 0) {
    return Error(Code::kUnsupported, "frames {} is not supported by model {} ({}): use a multiple of {} from {} to {}",
                 s.frames, model_->folder(), c.family, c.dit.patch[0], c.dit.patch[0], kMaxFrames);
  }
  return s;
}

namespace {

// At most `bytes` of `text`, cut at a character boundary, "…" marking a cut (for log lines).
std::string Utf8Prefix(const std::string& text, size_t bytes) {
  if (text.size() <= bytes) return text;
  size_t end = bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end) + "…";
}

}  // namespace

Result<const TextEmbedding*> TextToVideo::Embed(const std::string& prompt, const std::string* keep) {
  if (const TextEmbedding* cached = text_cache_.Find(prompt)) return cached;
  std::vector<std::string> unknown;
  const std::vector<int> ids = model_->tokenizer().Encode(prompt, config().text.max_tokens, &unknown);
  if (!unknown.empty()) {
    // The first few, so that a long prompt does not become a long log line.
    constexpr size_t kListed = 12;
    std::string words;
    for (size_t i = 0; i < std::min(unknown.size(), kListed); ++i) words += (i ? ", '" : "'") + unknown[i] + "'";
    if (unknown.size() > kListed) words += fmt::format(" and {} more", unknown.size() - kListed);
    Log(LogLevel::kWarning, "prompt words not in the model's vocabulary were ignored: {}", words);
  }
  // Only <start>: the clip follows no prompt (the vocabulary is lower-case ASCII words; "!!!" or a
  // prompt in another script has none of them).
  if (ids.size() == 1 && prompt.find_first_not_of(" \t\n") != std::string::npos) {
    Log(LogLevel::kWarning, "no word of the prompt \"{}\" is in the model's vocabulary: the clip follows no prompt",
        Utf8Prefix(prompt, 200));
  }
  DS_ASSIGN_OR_RETURN(TextEmbedding e, model_->text_encoder().Encode(*backend_, ids));
  return text_cache_.Add(prompt, std::move(e), keep);
}

Status TextToVideo::Denoise(const Options& opts, const OutputShape& shape, int prefix, const std::atomic<bool>& cancel,
                            const ProgressFn& on_progress, int clip) {
  const ModelConfig& c = config();
  const int C = c.latent_channels, T = shape.frames, H = shape.height / c.downsample, W = shape.width / c.downsample;
  const size_t frame = static_cast<size_t>(H) * W, plane = frame * T, n = plane * C;
  const Sampling sampling = ResolveSampling(opts, info_);  // info_'s defaults are c.sampling's
  const int steps = sampling.steps;
  const float guidance = static_cast<float>(sampling.guidance);
  const double shift = sampling.shift;
  const bool cfg = guidance != 1.0f;

  on_progress({DS_STAGE_TEXT, 0, 1, clip});
  DS_ASSIGN_OR_RETURN(const TextEmbedding* cond, Embed(opts.prompt, nullptr));
  DS_ASSIGN_OR_RETURN(const TextEmbedding* uncond, Embed(opts.negative_prompt, &opts.prompt));
  on_progress({DS_STAGE_TEXT, 1, 1, clip});

  // The clip's noise stream depends on the seed and the clip number, so that continued clips differ.
  latent_.resize(n);
  NoiseGenerator noise(ClipNoiseSeed(opts.seed, clip));
  noise.FillNormal(latent_);
  // Continuation: the previous clip's last `prefix` latent frames become this clip's clean first frames.
  auto apply_prefix = [&] {
    const int pt = previous_shape_.frames;
    for (int ch = 0; ch < C; ++ch)
      std::copy_n(previous_.begin() + (static_cast<size_t>(ch) * pt + pt - prefix) * frame, prefix * frame,
                  latent_.begin() + static_cast<size_t>(ch) * plane);
  };
  const int in_ch = c.dit.in_channels;
  dit_in_.assign(plane * in_ch, 0.0f);
  if (c.dit.prefix_mask_channel) {
    std::fill_n(dit_in_.begin() + static_cast<ptrdiff_t>(C * plane), prefix * frame, 1.0f);
  }
  velocity_.resize(n);
  velocity_uncond_.resize(n);

  FlowSampler sampler = sampling.sampler == SamplerKind::kUniPc ? FlowSampler::UniPc(steps, shift)
                                                                : FlowSampler::Euler(FlowSigmas(steps, shift));
  // One forward a step carries both passes (batched), so one cache slot serves them.
  const BlockCacheUse cache{static_cast<float>(opts.cache_threshold), 0};
  Dit& dit = model_->dit();
  dit.ResetBlockCache();
  for (int i = 0; i < steps; ++i) {
    if (cancel.load(std::memory_order_relaxed)) return Error(Code::kCancelled, "generation cancelled");
    if (prefix > 0) apply_prefix();
    std::copy(latent_.begin(), latent_.end(), dit_in_.begin());
    DitItem items[2];
    items[0] = {dit_in_.data(), cond->tokens.data(), cond->len, cond->pooled.data(), velocity_.data()};
    items[1] = {dit_in_.data(), uncond->tokens.data(), uncond->len, uncond->pooled.data(), velocity_uncond_.data()};
    DS_TRY(dit.Forward(*backend_, std::span<const DitItem>(items, cfg ? 2 : 1), sampler.sigma(i), T, H, W, cache));
    if (cfg) ApplyGuidance(velocity_, velocity_uncond_, guidance);
    sampler.Step(i, velocity_, latent_);
    on_progress({DS_STAGE_DENOISE, i + 1, steps, clip});
  }
  if (prefix > 0) apply_prefix();
  if (cache.threshold > 0) LogBlockCacheUse({dit.block_cache_stats(0), dit.block_cache_stats(1)}, clip);
  return Status::Ok();
}

Status TextToVideo::Generate(const Options& opts, bool continue_previous, FrameFormat format, const FrameFn& on_frame,
                             const ProgressFn& on_progress, const std::atomic<bool>& cancel) {
  if (wan_) return wan_->Generate(opts, continue_previous, format, on_frame, on_progress, cancel);
  const ModelConfig& c = config();
  DS_ASSIGN_OR_RETURN(OutputShape shape, Shape(opts));
  const int pt = c.dit.patch[0];
  const bool fresh = position_.StartsOver(continue_previous);
  if (fresh) previous_.clear();  // a new stream: nothing of the last one carries over
  int prefix = 0;
  if (!previous_.empty()) {
    if (previous_shape_.width != shape.width || previous_shape_.height != shape.height) {
      return Error(Code::kInvalidArgument, "cannot continue a {}x{} clip at {}x{}", previous_shape_.width,
                   previous_shape_.height, shape.width, shape.height);
    }
    prefix = std::min({c.sampling.continuation_prefix_frames, previous_shape_.frames, shape.frames - pt});
    prefix -= prefix % pt;
  }
  // Without prefix conditioning a clip owes nothing to the one before: a seek skips whole clips.
  DS_TRY(position_.Begin(!fresh, shape, shape.frames - prefix, c.sampling.continuation_prefix_frames == 0));
  const int clip = position_.clip();
  DS_TRY(Denoise(opts, shape, prefix, cancel, on_progress, clip));
  // Frames a stopped run of this clip already delivered are not decoded again.
  const int first = std::min(prefix + position_.delivered(), shape.frames);

  const int C = c.latent_channels, T = shape.frames, H = shape.height / c.downsample, W = shape.width / c.downsample;
  const size_t frame = static_cast<size_t>(H) * W;
  frame_latent_.resize(frame * C);
  pixels_.resize(LayoutOf(format.pixels, shape.width, shape.height).bytes);
  for (int t = first; t < T; ++t) {
    if (cancel.load(std::memory_order_relaxed)) return Error(Code::kCancelled, "generation cancelled");
    for (int ch = 0; ch < C; ++ch)
      std::copy_n(latent_.begin() + (static_cast<size_t>(ch) * T + t) * frame, frame,
                  frame_latent_.begin() + ch * frame);
    model_->decoder().Decode(*backend_, frame_latent_.data(), H, W, rgb_planar_);
    // The demo decoder leaves its frame on the host: converted there.
    PlanarToPixels(rgb_planar_.data(), shape.width, shape.height, format, pixels_.data());
    on_progress({DS_STAGE_DECODE, t - prefix + 1, T - prefix, clip});
    if (!position_.Deliver(on_frame, format, pixels_.data())) {
      return Error(Code::kCancelled, "generation stopped by the frame consumer");
    }
  }
  previous_ = latent_;
  previous_shape_ = shape;
  position_.EndClip();
  return Status::Ok();
}

void TextToVideo::Seek(int64_t frame) {
  if (wan_) {
    wan_->Seek(frame);
  } else {
    position_.SeekTo(frame);
  }
}

Status TextToVideo::SaveEmbeddings(const Options& opts, const std::string& path) {
  if (!wan_) return Error(Code::kUnsupported, "saving prompt embeddings needs a Wan2.1 model, not {}", info_.family);
  return wan_->SaveEmbeddings(opts, path);
}

Result<PromptEmbeddings> TextToVideo::LoadEmbeddings(const std::string& path) {
  if (!wan_) return Error(Code::kUnsupported, "prompt embeddings need a Wan2.1 model, not {}", info_.family);
  return wan_->LoadEmbeddings(path);
}

}  // namespace ds
