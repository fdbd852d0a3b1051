// What every model family's pipeline hands out: frames, progress, the output shape and the model's
// description, in the engine's C++ types (capi.cpp maps them onto include/ditstream.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/frame.h"
#include "ditstream.h"
#include "pipelines/options.h"

namespace ds {

// A frame's bytes in `format`, its planes packed as LayoutOf(format, width, height) places them.
struct FrameView {
  FrameFormat format;
  const uint8_t* data;
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
  int width = 0, height = 0, frames = 0;
};
inline bool SameShape(const OutputShape& a, const OutputShape& b) {
  return a.width == b.width && a.height == b.height && a.frames == b.frames;
}

// A loaded model as the front ends see it (ds_model_info): sizes are min + k·step ≤ max.
struct ModelInfo {
  std::string family;
  int native_width = 0, native_height = 0, native_frames = 0, fps = 0;
  int min_side = 0, max_side = 0, side_step = 0;
  int min_frames = 0, max_frames = 0, frames_step = 0;
  int default_steps = 0;
  double default_guidance = 0, default_shift = 0;
  int continuation_prefix_frames = 0;
};

// The sampling a generation runs: each option where it is set, the model's default where its
// sentinel says so (steps 0, guidance < 0, shift ≤ 0).
struct Sampling {
  int steps;
  double guidance, shift;
};
inline Sampling ResolveSampling(const Options& opts, const ModelInfo& info) {
  return {opts.steps ? opts.steps : info.default_steps, opts.guidance >= 0 ? opts.guidance : info.default_guidance,
          opts.shift > 0 ? opts.shift : info.default_shift};
}

}  // namespace ds
