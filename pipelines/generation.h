// What every model family's pipeline hands out: frames, progress, the output shape and the model's
// description, in the engine's C++ types (capi.cpp maps them onto include/ditstream.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include "core/frame.h"
#include "core/status.h"
#include "ditstream.h"
#include "pipelines/flow_sampler.h"
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
// the uninterrupted one and no frame comes twice. A seek (ds_seek) starts a new stream whose
// frames before the target count as handed out: made only as far as later frames need them.
class StreamPosition {
 public:
  // The next Begin starts a new stream, whatever continue_previous says, that hands out frames
  // from `frame` on.
  void SeekTo(int64_t frame) { seek_ = frame; }
  // Whether the next Begin starts a new stream: the pipeline's own state (a previous clip's
  // latents) must not carry over either.
  bool StartsOver(bool continue_previous) const { return !continue_previous || seek_ >= 0; }

  // At the start of a clip that hands out `new_frames` frames (its own, after any prefix of the
  // previous clip's). A new stream starts over; a stopped clip made again at another shape is
  // another clip, all of whose frames are new. Where clips do not depend on one another
  // (`independent_clips`: no prefix conditioning), whole clips before a seek's target are skipped,
  // not made.
  // Clips are numbered by an int (ds_frame.clip, each clip's noise seed): a stream far past a seek
  // near the last frame index ends at the last clip number with an error, never a wrapped one.
  static constexpr int64_t kLastClip = std::numeric_limits<int>::max();
  Status Begin(bool continue_previous, const OutputShape& shape, int new_frames, bool independent_clips) {
    if (StartsOver(continue_previous)) {
      const int64_t target = std::max<int64_t>(seek_, 0);
      *this = StreamPosition();
      target_ = target;
    }
    if (shape.width != shape_.width || shape.height != shape_.height || shape.frames != shape_.frames) delivered_ = 0;
    shape_ = shape;
    if (independent_clips && delivered_ == 0 && new_frames > 0) {
      const int64_t whole = (target_ - emitted_) / new_frames;
      if (whole > 0) {
        clip_ += whole;
        emitted_ += whole * new_frames;
      }
    }
    if (clip_ > kLastClip) {
      return Error(Code::kUnsupported, "the stream is past its last clip ({}): seek back or start it afresh",
                   kLastClip);
    }
    // This clip's frames before the target: counted as handed out, so never handed out.
    if (target_ > emitted_) {
      const int skip = static_cast<int>(std::min<int64_t>(target_ - emitted_, new_frames - delivered_));
      delivered_ += skip;
      emitted_ += skip;
    }
    return Status::Ok();
  }
  int clip() const { return static_cast<int>(clip_); }
  // This clip's frames handed out already (by a stopped run, or before a seek's target): made
  // again only where later frames need them, not handed out.
  int delivered() const { return delivered_; }
  // Hands the consumer the next frame; false when it refused it (then it is not counted).
  bool Deliver(const FrameFn& on_frame, FrameFormat format, const uint8_t* pixels) {
    if (!on_frame({format, pixels, shape_.width, shape_.height, emitted_, clip()})) return false;
    ++emitted_;
    ++delivered_;
    return true;
  }
  void EndClip() {
    ++clip_;
    delivered_ = 0;
  }

 private:
  int64_t clip_ = 0;
  int64_t emitted_ = 0;  // frames handed out, or counted as such (before target_)
  int delivered_ = 0;
  int64_t target_ = 0;  // the first frame a seek hands out (0: the stream's first)
  int64_t seek_ = -1;   // a seek for the next Begin
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
  SamplerKind default_sampler = SamplerKind::kEuler;
  int continuation_prefix_frames = 0;
  bool two_stage = false;  // a second, low-noise transformer with its own guidance (Wan2.2 A14B)
};

// The sampling a generation runs: each option where it is set, the model's default where its
// sentinel says so (steps 0, guidance < 0, shift ≤ 0, sampler auto).
// guidance_2: a two-stage model's low-noise stage's (guidance-2, else guidance); equal to guidance
// for other models.
struct Sampling {
  int steps;
  double guidance, shift;
  SamplerKind sampler;
  double guidance_2;
};
inline Sampling ResolveSampling(const Options& opts, const ModelInfo& info) {
  const double guidance = opts.guidance >= 0 ? opts.guidance : info.default_guidance;
  return {opts.steps ? opts.steps : info.default_steps, guidance, opts.shift > 0 ? opts.shift : info.default_shift,
          ResolveSampler(opts.sampler, info.default_sampler),
          info.two_stage && opts.guidance_2 >= 0 ? opts.guidance_2 : guidance};
}

}  // namespace ds
