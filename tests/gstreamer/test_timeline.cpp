// The element's frame times across rate changes, against times worked out by hand.
#include <gtest/gtest.h>

#include <cstdint>

#include "timeline.h"

namespace {

constexpr uint64_t kMs = 1'000'000;  // nanoseconds

TEST(Timeline, OneRateIsFrameIndexOverRate) {
  ditsrc::Timeline t;
  t.Reset(8, 1);
  EXPECT_EQ(t.Time(0), 0u);
  EXPECT_EQ(t.Time(3), 375 * kMs);
  EXPECT_EQ(t.FrameAt(375 * kMs - 1), 2u);
  EXPECT_EQ(t.FrameAt(375 * kMs), 3u);
}

// 3/1: frame 1 starts at 333333333 ns (rounded down), and that exact time is frame 1's.
TEST(Timeline, RoundedFrameTimesBelongToTheirFrame) {
  ditsrc::Timeline t;
  t.Reset(3, 1);
  EXPECT_EQ(t.Time(1), 333'333'333u);
  EXPECT_EQ(t.Time(2), 666'666'666u);
  EXPECT_EQ(t.Time(3), 1'000'000'000u);
  EXPECT_EQ(t.FrameAt(333'333'332), 0u);
  EXPECT_EQ(t.FrameAt(333'333'333), 1u);
  EXPECT_EQ(t.FrameAt(999'999'999), 2u);
  EXPECT_EQ(t.FrameAt(1'000'000'000), 3u);
}

// 8/1 for frames 0-9 (1.25 s), then 16/1: frame 12 is two sixteenths after 1.25 s.
TEST(Timeline, ANewRateGoesOnFromWhereTheOldLeftOff) {
  ditsrc::Timeline t;
  t.Reset(8, 1);
  t.ChangeRate(10, 16, 1);
  EXPECT_EQ(t.Time(9), 1125 * kMs);
  EXPECT_EQ(t.Time(10), 1250 * kMs);
  EXPECT_EQ(t.Time(12), 1375 * kMs);
  EXPECT_EQ(t.FrameAt(1200 * kMs), 9u);
  EXPECT_EQ(t.FrameAt(1300 * kMs), 10u);
  EXPECT_EQ(t.FrameAt(1375 * kMs), 12u);
  EXPECT_EQ(t.FrameAt(500 * kMs), 4u) << "times before the change keep the old rate";
}

// 30000/1001 for 7 frames (233566666 ns, rounded down), then 25/1 (40 ms a frame).
TEST(Timeline, ChangesFromARoundedRateStartAtTheRoundedTime) {
  ditsrc::Timeline t;
  t.Reset(30000, 1001);
  t.ChangeRate(7, 25, 1);
  EXPECT_EQ(t.Time(7), 233'566'666u);
  EXPECT_EQ(t.Time(8), 273'566'666u);
  EXPECT_EQ(t.FrameAt(273'566'666), 8u);
  EXPECT_EQ(t.FrameAt(273'566'665), 7u);
}

// After a seek back to frame 4, renegotiating the rate in force there (8/1) still forgets the
// change recorded at frame 10: the stream made again has the one rate.
TEST(Timeline, TheRateInForceAgainStillForgetsLaterChanges) {
  ditsrc::Timeline t;
  t.Reset(8, 1);
  t.ChangeRate(10, 16, 1);
  t.ChangeRate(6, 16, 2);
  EXPECT_EQ(t.Time(12), 1500 * kMs);
}

// After a seek back to frame 4, a change at frame 6 replaces the one recorded at frame 10.
TEST(Timeline, AChangeBeforeLaterOnesForgetsThem) {
  ditsrc::Timeline t;
  t.Reset(8, 1);
  t.ChangeRate(10, 16, 1);
  t.ChangeRate(6, 4, 1);
  EXPECT_EQ(t.Time(6), 750 * kMs);
  EXPECT_EQ(t.Time(12), 2250 * kMs) << "6 frames at 4/1 after 0.75 s";
  t.ChangeRate(3, 8, 1);
  EXPECT_EQ(t.Time(12), 1500 * kMs) << "back to one rate: the 4/1 span is gone";
}

TEST(Timeline, EmptyUntilARateIsSet) {
  ditsrc::Timeline t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.Time(5), 0u);
  EXPECT_EQ(t.FrameAt(5), 0u);
  t.ChangeRate(7, 2, 1);  // the first rate holds from frame 0
  EXPECT_FALSE(t.empty());
  EXPECT_EQ(t.Time(1), 500 * kMs);
}

// Times beyond 2^64 ns saturate instead of wrapping to small values.
TEST(Timeline, FarFramesSaturate) {
  ditsrc::Timeline t;
  t.Reset(1, 1000);
  EXPECT_EQ(t.Time(UINT64_MAX / 2), UINT64_MAX);
  EXPECT_EQ(t.Time(1), 1000u * 1000 * kMs);
}

// A seek's effect on a stream that has pushed frames 0..9 at 8/1 (125 ms each): times worked out
// by hand.
TEST(EffectOfSeek, KeepsPutsBackOrRestarts) {
  using ditsrc::SeekEffect;
  ditsrc::Timeline t;
  t.Reset(8, 1);
  const uint64_t pushed = 10;
  // The next frame's start (a seek that moved only the stop, or a seek to frame 10 itself).
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1250 * kMs, true, true), SeekEffect::kKeep);
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1250 * kMs, false, true), SeekEffect::kKeep);
  // Inside frame 9 with the position unmoved: basesrc clamped it to a stop there, after frame 9
  // went out.
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1200 * kMs, false, true), SeekEffect::kKeep);
  // A seek to inside frame 9: frame 9 shows again.
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1200 * kMs, true, true), SeekEffect::kPutBackLast);
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1200 * kMs, true, false), SeekEffect::kRestart);
  // Frame 9's start, moved or not (basesrc dropped frame 9 for the flush): it goes back if at hand.
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1125 * kMs, false, true), SeekEffect::kPutBackLast);
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1125 * kMs, true, true), SeekEffect::kPutBackLast);
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1125 * kMs, false, false), SeekEffect::kRestart);
  // Anywhere else: made afresh.
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1000 * kMs, true, true), SeekEffect::kRestart);
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 1375 * kMs, true, true), SeekEffect::kRestart);
  EXPECT_EQ(ditsrc::EffectOfSeek(t, pushed, 0, true, true), SeekEffect::kRestart);
  EXPECT_EQ(ditsrc::EffectOfSeek(t, 0, 0, false, false), SeekEffect::kKeep);
}

}  // namespace
