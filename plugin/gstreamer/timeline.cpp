#include "timeline.h"

#include <algorithm>
#include <cstdint>

namespace ditsrc {
namespace {

// 128-bit products keep n * 1e9 * den exact (a GCC and Clang extension; __extension__ says so
// to -Wpedantic).
__extension__ using Wide = unsigned __int128;
constexpr Wide kNsPerSecond = 1'000'000'000;

constexpr uint64_t kForever = UINT64_MAX;

// k frames at num/den, in whole nanoseconds (rounded down); 128-bit, so no product overflows, and
// a time past 2^64 ns (585 years) saturates.
uint64_t Duration(uint64_t k, int num, int den) {
  const Wide ns = k * kNsPerSecond * static_cast<unsigned>(den) / static_cast<unsigned>(num);
  return ns > kForever ? kForever : static_cast<uint64_t>(ns);
}

}  // namespace

void Timeline::Reset(int num, int den) { spans_.assign(1, Span{0, 0, num, den}); }

const Timeline::Span& Timeline::SpanOfFrame(uint64_t frame) const {
  // The last span that starts at or before the frame (the first starts at frame 0).
  auto it = std::upper_bound(spans_.begin(), spans_.end(), frame,
                             [](uint64_t f, const Span& s) { return f < s.first_frame; });
  return *(it - 1);
}

void Timeline::ChangeRate(uint64_t frame, int num, int den) {
  if (spans_.empty()) {
    Reset(num, den);
    return;
  }
  const uint64_t time = Time(frame);
  // Changes from `frame` on belonged to a stream that a seek back before them discarded.
  spans_.erase(std::lower_bound(spans_.begin(), spans_.end(), frame,
                                [](const Span& s, uint64_t f) { return s.first_frame < f; }),
               spans_.end());
  if (!spans_.empty()) {
    const Span& last = spans_.back();
    if (static_cast<int64_t>(last.num) * den == static_cast<int64_t>(num) * last.den) return;
  }
  spans_.push_back(Span{frame, time, num, den});
}

uint64_t Timeline::Time(uint64_t frame) const {
  if (spans_.empty()) return 0;
  const Span& s = SpanOfFrame(frame);
  const uint64_t d = Duration(frame - s.first_frame, s.num, s.den);
  return d > kForever - s.first_time ? kForever : s.first_time + d;
}

uint64_t Timeline::FrameAt(uint64_t ns) const {
  if (spans_.empty()) return 0;
  auto it =
      std::upper_bound(spans_.begin(), spans_.end(), ns, [](uint64_t t, const Span& s) { return t < s.first_time; });
  const Span& s = *(it - 1);
  const Wide elapsed = ns - s.first_time;
  uint64_t k =
      static_cast<uint64_t>(elapsed * static_cast<unsigned>(s.num) / (kNsPerSecond * static_cast<unsigned>(s.den)));
  // Frame times are rounded down: a time equal to the next frame's (3/1: 333333333 ns) is that
  // frame's, though the exact quotient falls just short of it.
  if (Duration(k + 1, s.num, s.den) <= elapsed) ++k;
  return s.first_frame + k;
}

SeekEffect EffectOfSeek(const Timeline& timeline, uint64_t pushed, uint64_t position, bool moved, bool last_at_hand) {
  const uint64_t target = timeline.FrameAt(position);
  if (target == pushed) return SeekEffect::kKeep;
  if (target + 1 != pushed) return SeekEffect::kRestart;
  if (!moved && position > timeline.Time(target)) return SeekEffect::kKeep;
  return last_at_hand ? SeekEffect::kPutBackLast : SeekEffect::kRestart;
}

}  // namespace ditsrc
