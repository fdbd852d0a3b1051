// What every model family's pipeline hands out: frames, progress, the output shape and the model's
// description, in the engine's C++ types (capi.cpp maps them onto include/ditstream.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/frame.h"
#include "ditstream.h"

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
  int width, height, frames;
};

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

}  // namespace ds
