// The times of a stream's frames, whose rate may change mid-stream (downstream renegotiates):
// each rate holds from the frame at which it was negotiated, so the timestamps go on from where
// the old rate left them instead of jumping back to where the new rate would have put them.
// Plain arithmetic, tested without GStreamer.
#pragma once

#include <cstdint>
#include <vector>

namespace ditsrc {

class Timeline {
 public:
  // One rate (frames per second, num/den, both > 0) from frame 0 at time 0.
  void Reset(int num, int den);
  // Frames from `frame` on are at num/den (on an empty timeline: from frame 0). Changes recorded
  // after `frame` are forgotten: a seek back before them made the stream again.
  void ChangeRate(uint64_t frame, int num, int den);
  // No rate yet: every time is 0.
  bool empty() const { return spans_.empty(); }

  // Frame n's start in nanoseconds, computed from its span's first frame so it never drifts
  // (a time is rounded down to whole nanoseconds).
  uint64_t Time(uint64_t frame) const;
  // The frame showing at `ns`: the last one whose Time() is not after it.
  uint64_t FrameAt(uint64_t ns) const;

 private:
  struct Span {
    uint64_t first_frame, first_time;
    int num, den;
  };
  const Span& SpanOfFrame(uint64_t frame) const;
  std::vector<Span> spans_;
};

// What a seek to `position` (basesrc's, in ns) does to a stream that has handed out `pushed` frames.
// `moved`: the seek changed the position (not only the stop). kKeep when the frame at the position
// is the next one; also when a seek that moved only the stop finds the position inside the last
// frame (basesrc clamps it to a stop there, after that frame went out). kPutBackLast when the
// position is in the last frame handed out otherwise (a seek back to it, or basesrc dropped it for
// the flush before pushing it, the position then at its start), possible only if it is still at
// hand. kRestart otherwise: the stream is made afresh from there.
enum class SeekEffect { kKeep, kPutBackLast, kRestart };
SeekEffect EffectOfSeek(const Timeline& timeline, uint64_t pushed, uint64_t position, bool moved, bool last_at_hand);

}  // namespace ditsrc
