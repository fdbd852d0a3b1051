#include "pipelines/wan_pipeline.h"

#include <algorithm>
#include <span>

#include "core/decoder.h"
#include "core/log.h"
#include "core/wan/wan_vae_tiling.h"
#include "pipelines/flow_sampler.h"
#include "pipelines/noise.h"
#include "pipelines/scheduler.h"

namespace ds {
namespace {

constexpr const char* kFamily = "wan2.1";

// The vae-tiling option: off streams; on tiles whenever diffusers would (a side beyond one tile);
// auto tiles where streaming's caches would not fit the backend's working-set budget (half the RAM
// on the CPU: 720p on a 24 GB machine, not 480p; most of a GPU's free memory), since the tiles cost
// the streaming of frames and 1.8x the convolutions.
bool UseVaeTiles(const WanVaeDecoder& vae, const Backend& be, const VaeTiles& tiles, const std::string& mode, int T,
                 int h, int w) {
  const int s = vae.config().spatial_factor();
  if (mode == "off" || !VaeTilingApplies(tiles, s, h, w)) return false;
  const size_t streamed = vae.WorkingSetBytes(h, w), budget = be.WorkingSetBudget();
  const bool tile = mode == "on" || (budget > 0 && streamed > budget);
  Log(LogLevel::kInfo, "VAE at {}x{}: {} (streaming holds {:.1f} GB, tiles {:.1f} GB; {} budget {:.1f} GB)", w * s,
      h * s, tile ? "spatial tiles" : "streamed", streamed / 1e9, VaeTiledWorkingSetBytes(vae, tiles, T, h, w) / 1e9,
      be.name(), budget / 1e9);
  return tile;
}

// Wan's samplers on the folder's training scale; Euler with diffusers' FlowMatchEulerDiscreteScheduler
// spacing.
FlowSampler MakeSampler(SamplerKind kind, const WanSchedulerConfig& c, int steps, double shift) {
  if (kind == SamplerKind::kUniPc) return FlowSampler::UniPc(steps, shift, c.train_timesteps);
  return FlowSampler::Euler(FlowMatchEulerSigmas(steps, shift, c.train_timesteps), c.train_timesteps);
}

Status Cancelled() { return Error(Code::kCancelled, "generation cancelled"); }

// The largest value ≤ limit of the form min + k·step.
int LastOnGrid(int min, int step, int limit) { return min + (limit - min) / step * step; }

}  // namespace

Result<std::unique_ptr<WanPipeline>> WanPipeline::Load(const std::string& folder, Backend& backend, int text_len,
                                                       const std::vector<LoraSpec>& loras,
                                                       const std::vector<LoraSpec>& loras_2) {
  DS_ASSIGN_OR_RETURN(std::unique_ptr<WanModel> model, WanModel::Load(folder, loras, loras_2));
  return std::unique_ptr<WanPipeline>(new WanPipeline(std::move(model), backend, text_len));
}

ModelInfo WanPipeline::Info() const {
  const WanModel& m = *model_;
  const int side_step = WanDefaults::kSizeMultiple, temporal = m.vae().config().temporal_factor();
  // The option table bounds sizes; the RoPE table bounds the token grid per axis.
  const int rope = m.transformer().config().rope_max_seq_len;
  const int side_limit = std::min(static_cast<int>(FindOption("width")->max), rope * side_step);
  const int frame_limit = std::min(static_cast<int>(FindOption("frames")->max), (rope - 1) * temporal + 1);
  ModelInfo info;
  info.family = kFamily;
  info.native_width = WanDefaults::kWidth;
  info.native_height = WanDefaults::kHeight;
  info.native_frames = WanDefaults::kFrames;
  info.fps = WanDefaults::kFps;
  info.min_side = side_step;
  info.max_side = LastOnGrid(side_step, side_step, side_limit);
  info.side_step = side_step;
  info.min_frames = 1;
  info.max_frames = LastOnGrid(1, temporal, frame_limit);
  info.frames_step = temporal;
  info.default_steps = WanDefaults::kSteps;
  info.default_guidance = WanDefaults::kGuidance;
  info.default_shift = m.scheduler().shift;
  info.default_sampler =
      m.scheduler().kind == WanSchedulerConfig::Kind::kUniPc ? SamplerKind::kUniPc : SamplerKind::kEuler;
  info.continuation_prefix_frames = 0;
  info.two_stage = m.transformer_2() != nullptr;
  return info;
}

Result<OutputShape> WanPipeline::Shape(const Options& opts) const {
  const ModelInfo info = Info();
  const OutputShape s{opts.width ? opts.width : info.native_width, opts.height ? opts.height : info.native_height,
                      opts.frames ? opts.frames : info.native_frames};
  for (auto [name, v] : {std::pair{"width", s.width}, {"height", s.height}}) {
    if (v < info.min_side || v > info.max_side || v % info.side_step != 0) {
      return Error(Code::kUnsupported, "{} {} is not supported by model {} ({}): use a multiple of {} from {} to {}",
                   name, v, model_->folder(), info.family, info.side_step, info.min_side, info.max_side);
    }
  }
  if (s.frames < info.min_frames || s.frames > info.max_frames || (s.frames - 1) % info.frames_step != 0) {
    return Error(Code::kUnsupported,
                 "frames {} is not supported by model {} ({}): use {}k + 1 frames from {} to {} (e.g. {})", s.frames,
                 model_->folder(), info.family, info.frames_step, info.min_frames, info.max_frames, info.native_frames);
  }
  DS_TRY(model_->LatentShape(s.width, s.height, s.frames).status());
  return s;
}

Result<const std::vector<float>*> WanPipeline::Embed(const std::string& prompt, const std::string* keep,
                                                     bool* encoded) {
  if (const std::vector<float>* cached = text_cache_.Find(prompt)) return cached;
  std::vector<float> e;
  DS_TRY(model_->EncodePrompt(*backend_, prompt, text_len_, e));
  *encoded = true;
  return text_cache_.Add(prompt, std::move(e), keep);
}

Status WanPipeline::SaveEmbeddings(const Options& opts, const std::string& path) {
  bool encoded = false;
  PromptEmbeddings e;
  e.family = kFamily;
  e.prompt = opts.prompt;
  e.negative_prompt = opts.negative_prompt;
  e.rows = text_len_;
  e.cols = model_->text_encoder().config().d_model;
  DS_ASSIGN_OR_RETURN(const std::vector<float>* cond, Embed(opts.prompt, nullptr, &encoded));
  e.cond = *cond;
  DS_ASSIGN_OR_RETURN(const std::vector<float>* uncond, Embed(opts.negative_prompt, &opts.prompt, &encoded));
  e.uncond = *uncond;
  if (encoded) model_->text_encoder().ReleaseMemory();
  return WritePromptEmbeddings(path, e);
}

Result<PromptEmbeddings> WanPipeline::LoadEmbeddings(const std::string& path) {
  DS_ASSIGN_OR_RETURN(PromptEmbeddings e,
                      ReadPromptEmbeddings(path, kFamily, text_len_, model_->text_encoder().config().d_model));
  text_cache_.Add(e.prompt, e.cond, nullptr);
  text_cache_.Add(e.negative_prompt, e.uncond, &e.prompt);
  return e;
}

Status WanPipeline::Denoise(const Options& opts, std::vector<float>& latent, const OutputShape& shape, int clip,
                            const ProgressFn& on_progress, const std::atomic<bool>& cancel) {
  DS_ASSIGN_OR_RETURN(auto dims, model_->LatentShape(shape.width, shape.height, shape.frames));
  const auto [C, T, H, W] = dims;
  const size_t n = static_cast<size_t>(C) * T * H * W;
  if (latent.size() != n) {
    return Error(Code::kInternal, "Wan: initial latents hold {} values, the {}x{}x{} clip needs {}", latent.size(),
                 shape.width, shape.height, shape.frames, n);
  }
  const auto [steps, guidance, shift, sampler_kind, guidance_2] = ResolveSampling(opts, Info());
  // As diffusers' WanPipeline: the unconditional pass runs only when guidance > 1.
  const bool cfg = guidance > 1.0;

  on_progress({DS_STAGE_TEXT, 0, 1, clip});
  bool encoded = false;
  DS_ASSIGN_OR_RETURN(const std::vector<float>* cond, Embed(opts.prompt, nullptr, &encoded));
  const std::vector<float>* uncond = nullptr;
  if (cfg) {
    DS_ASSIGN_OR_RETURN(uncond, Embed(opts.negative_prompt, &opts.prompt, &encoded));
  }
  // UMT5-XXL's mapped pages (11 GB in bf16) would stay resident beside the DiT; it needs only the embeddings.
  if (encoded) model_->text_encoder().ReleaseMemory();
  on_progress({DS_STAGE_TEXT, 1, 1, clip});

  velocity_.resize(n);
  if (cfg) velocity_uncond_.resize(n);
  // A two-stage model (Wan2.2 A14B) hands the steps below its boundary timestep to transformer_2,
  // with guidance-2, as diffusers' WanPipeline does; whether the unconditional pass runs follows the
  // first stage's guidance there too.
  WanTransformer* const high = &model_->transformer();
  WanTransformer* const low = model_->transformer_2();
  // In float, as torch compares its float32 timesteps with the boundary.
  const auto boundary = static_cast<float>(model_->boundary_timestep());
  if (low == nullptr && opts.guidance_2 >= 0 && !warned_guidance_2_) {
    Log(LogLevel::kWarning, "option 'guidance-2' applies to two-stage models; {} has one transformer: ignored",
        model_->folder());
    warned_guidance_2_ = true;
  }
  // However the clip ends (a cancel, an error), a two-stage model leaves neither expert in the
  // backend's memory: the next clip starts with the other one than a stopped clip may have ended on.
  struct TakeTurns {
    WanPipeline* pipeline;
    WanTransformer *high, *low;
    int clip;
    ~TakeTurns() {
      if (low == nullptr) return;
      pipeline->StageDone(*high, clip);
      pipeline->StageDone(*low, clip);
    }
  } take_turns{this, high, low, clip};
  FlowSampler sampler = MakeSampler(sampler_kind, model_->scheduler(), steps, shift);
  // The conditional and the unconditional passes each continue their own previous step.
  const auto threshold = static_cast<float>(opts.cache_threshold);
  const BlockCacheUse cond_pass{threshold, 0}, uncond_pass{threshold, 1};
  for (WanTransformer* dit : {high, low}) {
    if (dit) dit->ResetBlockCache();  // a clip stopped midway (cancelled, failed) may have left it filled
  }
  for (int i = 0; i < steps; ++i) {
    if (cancel.load(std::memory_order_relaxed)) return Cancelled();
    const float t = sampler.timestep(i);
    const bool low_noise = low != nullptr && t < boundary;
    WanTransformer& dit = low_noise ? *low : *high;
    if (low_noise && i > 0 && sampler.timestep(i - 1) >= boundary) {
      // Past the boundary the first transformer is done for this clip: one expert's weights and
      // activations in the backend's memory at a time (28 GB each for the A14B's in BF16).
      StageDone(*high, clip);
    }
    DS_TRY(dit.Forward(*backend_, latent.data(), T, H, W, t, cond->data(), text_len_, velocity_.data(), cond_pass));
    if (cfg) {
      DS_TRY(dit.Forward(*backend_, latent.data(), T, H, W, t, uncond->data(), text_len_, velocity_uncond_.data(),
                         uncond_pass));
      ApplyGuidance(velocity_, velocity_uncond_, static_cast<float>(low_noise ? guidance_2 : guidance));
    }
    sampler.Step(i, velocity_, latent);
    on_progress({DS_STAGE_DENOISE, i + 1, steps, clip});
  }
  // The VAE decode needs the memory more than the next clip needs the activations kept (a
  // two-stage model's experts are done by take_turns).
  if (low == nullptr) StageDone(*high, clip);
  return Status::Ok();
}

void WanPipeline::StageDone(WanTransformer& dit, int clip) {
  if (dit.block_cache_stats(0).forwards > 0) {
    LogBlockCacheUse({dit.block_cache_stats(0), dit.block_cache_stats(1)}, clip,
                     &dit == model_->transformer_2() ? "transformer_2"
                     : model_->transformer_2()       ? "transformer"
                                                     : "");
  }
  dit.ResetBlockCache();
  dit.ReleaseWorkspace();
  // A two-stage model's transformers take turns in the backend's memory; one transformer keeps its
  // weights there for the next clip.
  if (model_->transformer_2() != nullptr) dit.ReleaseDeviceWeights();
}

Status WanPipeline::Decode(std::vector<float>& latent, const OutputShape& shape, int clip,
                           const std::string& vae_tiling, const PlanarFrameFn& on_frame, const ProgressFn& on_progress,
                           const std::atomic<bool>& cancel) {
  return DecodeFrames(latent, shape, clip, vae_tiling, &on_frame, FrameFormat{PixelFormat::kRgb}, nullptr, on_progress,
                      cancel);
}

Status WanPipeline::DecodePixels(std::vector<float>& latent, const OutputShape& shape, int clip,
                                 const std::string& vae_tiling, FrameFormat format, const PixelFrameFn& on_frame,
                                 const ProgressFn& on_progress, const std::atomic<bool>& cancel) {
  return DecodeFrames(latent, shape, clip, vae_tiling, nullptr, format, &on_frame, on_progress, cancel);
}

Status WanPipeline::DecodeFrames(std::vector<float>& latent, const OutputShape& shape, int clip,
                                 const std::string& vae_tiling, const PlanarFrameFn* planar, FrameFormat format,
                                 const PixelFrameFn* pixels, const ProgressFn& on_progress,
                                 const std::atomic<bool>& cancel) {
  DS_ASSIGN_OR_RETURN(auto dims, model_->LatentShape(shape.width, shape.height, shape.frames));
  const auto [C, T, H, W] = dims;
  WanVaeDecoder& vae = model_->vae();
  const VaeTiles tiles;
  if (UseVaeTiles(vae, *backend_, tiles, vae_tiling, T, H, W)) {
    vae.Denormalize(latent.data(), static_cast<int64_t>(T) * H * W);  // per channel over all frames
    return DecodeTiled(
        vae, *backend_, tiles, latent.data(), T, H, W,
        [&](int done, int total) -> Status {
          if (cancel.load(std::memory_order_relaxed)) return Cancelled();
          on_progress({DS_STAGE_DECODE, done, total, clip});
          return Status::Ok();
        },
        [&](const float* rgb) -> Status {
          if (planar) return (*planar)(rgb);
          pixels_.resize(LayoutOf(format.pixels, shape.width, shape.height).bytes);
          PlanarToPixels(rgb, shape.width, shape.height, format, pixels_.data());
          return (*pixels)(pixels_.data());
        });
  }
  const size_t plane = static_cast<size_t>(H) * W;
  frame_latent_.resize(plane * C);
  DS_TRY(vae.Begin(*backend_, H, W));
  int decoded = 0;
  const int total = vae.OutputFrames(T);
  Status status = Status::Ok();
  for (int t = 0; t < T && status.ok(); ++t) {
    if (cancel.load(std::memory_order_relaxed)) {
      status = Cancelled();
      break;
    }
    for (int ch = 0; ch < C; ++ch) {
      std::copy_n(latent.begin() + static_cast<ptrdiff_t>((static_cast<size_t>(ch) * T + t) * plane), plane,
                  frame_latent_.begin() + static_cast<ptrdiff_t>(ch * plane));
    }
    vae.Denormalize(frame_latent_.data(), static_cast<int64_t>(plane));
    auto tick = [&]() -> Status {
      if (cancel.load(std::memory_order_relaxed)) return Cancelled();
      on_progress({DS_STAGE_DECODE, ++decoded, total, clip});
      return Status::Ok();
    };
    if (planar) {
      status = vae.Push(*backend_, frame_latent_.data(), [&](const float* rgb) -> Status {
        DS_TRY(tick());
        return (*planar)(rgb);
      });
    } else {
      status = vae.PushPixels(*backend_, frame_latent_.data(), format, [&](const uint8_t* bytes) -> Status {
        DS_TRY(tick());
        return (*pixels)(bytes);
      });
    }
  }
  // The causal caches are the decoder's whole working set (about 8 GB at 480x832): not kept between clips.
  vae.End();
  return status;
}

Status WanPipeline::Generate(const Options& opts, bool continue_previous, FrameFormat format, const FrameFn& on_frame,
                             const ProgressFn& on_progress, const std::atomic<bool>& cancel) {
  DS_ASSIGN_OR_RETURN(OutputShape shape, Shape(opts));
  DS_ASSIGN_OR_RETURN(auto dims, model_->LatentShape(shape.width, shape.height, shape.frames));
  // Wan2.1 has no prefix conditioning: every clip is its own, and a seek skips whole clips.
  DS_TRY(position_.Begin(continue_previous, shape, shape.frames, /*independent_clips=*/true));
  const int clip = position_.clip();
  if (clip > 0 && position_.delivered() == 0) {
    Log(LogLevel::kInfo, "{}: Wan2.1 has no prefix-frame conditioning: clip {} starts afresh (a cut)", model_->folder(),
        clip);
  }
  latent_.resize(static_cast<size_t>(dims[0]) * dims[1] * dims[2] * dims[3]);
  NoiseGenerator(ClipNoiseSeed(opts.seed, clip)).FillNormal(latent_);
  DS_TRY(Denoise(opts, latent_, shape, clip, on_progress, cancel));

  // Frames a stopped run of this clip already delivered are decoded (the VAE is causal) but not
  // delivered again.
  int skip = position_.delivered();
  auto deliver = [&](const uint8_t* pixels) {
    if (skip > 0) {
      --skip;
      return Status::Ok();
    }
    if (!position_.Deliver(on_frame, format, pixels)) {
      return Error(Code::kCancelled, "generation stopped by the frame consumer");
    }
    return Status::Ok();
  };
  DS_TRY(DecodePixels(latent_, shape, clip, opts.vae_tiling, format, deliver, on_progress, cancel));
  position_.EndClip();
  return Status::Ok();
}

}  // namespace ds
