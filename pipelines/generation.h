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

// Where a stream of clips stands, for both pipelines: the clip being made, the frames handed out,
// and how many of this clip's frames a stopped run (a cancel, or the consumer) already handed out.
// A continuation makes that clip again and hands out only the frames after those, so the stream is
// the uninterrupted one and no frame comes twice.
class StreamPosition {
 public:
  // At the start of a clip. A new stream (continue_previous false) starts over; a stopped clip made
  // again at another shape is another clip, all of whose frames are new.
  void Begin(bool continue_previous, const OutputShape& shape) {
    if (!continue_previous) *this = StreamPosition();
    if (shape.width != shape_.width || shape.height != shape_.height || shape.frames != shape_.frames) delivered_ = 0;
    shape_ = shape;
  }
  int clip() const { return clip_; }
  // This clip's frames a stopped run already handed out: made again, not handed out.
  int delivered() const { return delivered_; }
  // Hands the consumer the next frame; false when it refused it (then it is not counted).
  bool Deliver(const FrameFn& on_frame, FrameFormat format, const uint8_t* pixels) {
    if (!on_frame({format, pixels, shape_.width, shape_.height, emitted_, clip_})) return false;
    ++emitted_;
    ++delivered_;
    return true;
  }
  void EndClip() {
    ++clip_;
    delivered_ = 0;
  }

 private:
  int clip_ = 0;
  int64_t emitted_ = 0;
  int delivered_ = 0;
  OutputShape shape_;
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
