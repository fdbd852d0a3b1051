// The Wan2.1 VAE decoder (diffusers AutoencoderKLWan, reference/wan21_spec.md §4), streamed: one
// latent frame in, its video frames out (1 for the first latent frame, 4 for each later one), so
// the first frame exists long before the clip is decoded.
//
// Every temporal op of the decoder is causal, so instead of diffusers' chunks the decoder runs frame
// by frame through every layer: each 3x3x3 causal conv keeps its last two input frames (zeros
// before the first), exactly what diffusers' feature cache holds, and each temporal upsampler turns
// one frame into two by its own (3,1,1) causal conv, except for the very first frame, which it
// passes through unchanged. The result equals diffusers' chunked decode (see the spec's §4.4).
//
// Activations are pixel-major [H·W, C] (rows = pixels, as the Backend's norm/linear/attention ops
// want); each 3x3x3 conv is one Backend::conv3x3 over its channel-major history [3 frames, C, H, W]
// read as 3C input channels against the [O, C, 3, 3, 3] weight, reordered at load to
// [O, 3, C, 3, 3] and read as [O, 3C, 3, 3]. Backend::transpose switches between the two layouts.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/frame.h"
#include "core/status.h"
#include "core/wan/wan_config.h"

namespace ds {

class Weights;

class WanVaeDecoder {
 public:
  // path: a diffusers vae/ folder (config.json + safetensors), or a checkpoint with the original
  // Wan2.1_VAE names (decoder.middle..., conv2.*), e.g. ComfyUI's wan_2.1_vae.safetensors.
  static Result<WanVaeDecoder> Load(const std::string& path);

  WanVaeDecoder(WanVaeDecoder&&) noexcept;
  WanVaeDecoder& operator=(WanVaeDecoder&&) noexcept;
  ~WanVaeDecoder();

  const WanVaeConfig& config() const { return cfg_; }
  // Video frames produced from `latent_frames` latent frames: 1 + temporal_factor·(T − 1).
  int OutputFrames(int latent_frames) const;

  // The pipeline's de-normalisation of sampled latents, in place on one latent frame [z_dim, plane]:
  // z = x / (1/std) + mean per channel (diffusers' exact float operations).
  void Denormalize(float* latent_frame, int64_t plane) const;

  // kClamped: frames clamped to [-1, 1], as a decode's output. kRaw: unclamped, for spatial tiles
  // that are blended before the clamp (diffusers' tiled_decode).
  enum class Range { kClamped, kRaw };
  // Starts a new video whose latent frames are h x w on `be`: clears every causal cache. Caches
  // and activations live in the backend's memory (the weights are copied there at the first Begin
  // on a GPU backend), so a frame crosses to the host only as its latent in and its pixels out.
  Status Begin(Backend& be, int h, int w, Range range = Range::kClamped);
  // Decodes the next latent frame z [z_dim, h, w] (de-normalised), on Begin's backend. on_frame receives each video
  // frame as planar RGB [3, 8h, 8w] (in the range Begin chose), valid during the call; an error it
  // returns stops decoding and is returned.
  using FrameFn = std::function<Status(const float* rgb)>;
  Status Push(Backend& be, const float* z, const FrameFn& on_frame);
  // Push for a consumer of 8-bit frames: each video frame reaches on_pixels as the bytes of
  // `format` (core/frame.h, clamped whatever Begin's range), converted on Begin's backend, so a GPU
  // sends a quarter of the float frame's bytes (I420: an eighth) to the host.
  using PixelFn = std::function<Status(const uint8_t* pixels)>;
  Status PushPixels(Backend& be, const float* z, FrameFormat format, const PixelFn& on_pixels);
  // Frees the caches and scratch (about 8 GB at 480x832) until the next Begin.
  void End();

  // Bytes of causal caches and scratch that decoding latent frames of h x w holds (Begin plus the
  // first Push; in the backend's memory but for a frame's worth of staging on the host): what
  // streaming costs, to choose between it and spatial tiles.
  size_t WorkingSetBytes(int h, int w) const;
  // Bytes the decoder holds now (its weights apart).
  size_t AllocatedBytes() const;

  struct Impl;

 private:
  WanVaeDecoder();
  Status Allocate(Backend& be, int h, int w, Range range);  // Begin's buffers, on `be`
  WanVaeConfig cfg_;
  std::unique_ptr<Weights> weights_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ds
