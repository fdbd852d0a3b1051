// Cancellation at every stage: ds_cancel from the progress callback at each event (text encoding,
// each denoising step, each decoded frame), a frame callback that stops at each frame, and
// ds_cancel from another thread at arbitrary moments. Each must end the call with
// DS_ERR_CANCELLED (or, for a cancel after the last frame's progress, finish that frame), deliver only
// correct frames, leak nothing (LeakSanitizer in ci_sanitize.sh) and leave the generator able to
// make the same clip again.
#include <chrono>
#include <thread>

#include "tests/faults/fault_util.h"

namespace {

using faults::Clip;
using faults::Generator;
using faults::ScratchDir;

void ExpectPrefixOf(const Clip& part, const Clip& whole, const std::string& where) {
  ASSERT_LE(part.frames.size(), whole.frames.size()) << where;
  for (size_t i = 0; i < part.frames.size(); ++i) EXPECT_EQ(part.frames[i], whole.frames[i]) << where << ", frame " << i;
}

class Cancel : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(ds::testing::WriteRandomModel(dir_.path(), faults::SmallSpec(), 8), "");
    ref_ = faults::Reference(dir_.path());
    // TEXT start and end, one event per step, one per frame.
    const auto spec = faults::SmallSpec();
    ASSERT_EQ(ref_.progress.size(), static_cast<size_t>(2 + spec.steps + spec.frames));
  }
  // After a cancelled call the generator must produce the reference clip again.
  void ExpectRecovers(Generator& g, const std::string& where) {
    ds_reset_cancel(g.get());
    Clip again;
    ASSERT_EQ(g.Generate(again), DS_OK) << where << ": " << g.error();
    EXPECT_EQ(again.frames, ref_.frames) << where;
  }
  ScratchDir dir_{"cancel"};
  Clip ref_;
};

TEST_F(Cancel, FromTheProgressCallbackAtEveryEvent) {
  Generator g(dir_.path());
  ASSERT_EQ(g.Load(), DS_OK) << g.error();
  for (size_t i = 0; i < ref_.progress.size(); ++i) {
    const ds_progress at = ref_.progress[i];
    const std::string where = "cancel at event " + std::to_string(i) + " (stage " + std::to_string(at.stage) +
                              ", " + std::to_string(at.step) + "/" + std::to_string(at.total) + ")";
    Clip clip;
    size_t seen = 0;
    clip.on_progress = [&](const ds_progress&) {
      if (seen++ == i) ds_cancel(g.get());
    };
    const ds_status s = g.Generate(clip);
    const bool last = i + 1 == ref_.progress.size();
    if (last && s == DS_OK) {
      // The last frame was already decoded; the pending cancel stops the next call at once.
      Clip next;
      EXPECT_EQ(g.Generate(next), DS_ERR_CANCELLED) << where;
      EXPECT_TRUE(next.frames.empty()) << where;
    } else {
      EXPECT_EQ(s, DS_ERR_CANCELLED) << where << ": " << g.error();
      // Promptly: at most the event that closes the stage in flight follows the cancel.
      EXPECT_LE(clip.progress.size(), i + 2) << where;
    }
    ExpectPrefixOf(clip, ref_, where);
    ExpectRecovers(g, where);
  }
}

TEST_F(Cancel, FrameCallbackStopsAtEveryFrame) {
  Generator g(dir_.path());
  ASSERT_EQ(g.Load(), DS_OK) << g.error();
  for (size_t stop = 0; stop < ref_.frames.size(); ++stop) {
    const std::string where = "stop at frame " + std::to_string(stop);
    Clip clip;
    clip.on_frame = [&](const ds_frame& f) { return f.index == static_cast<int64_t>(stop) ? 1 : 0; };
    EXPECT_EQ(g.Generate(clip), DS_ERR_CANCELLED) << where;
    EXPECT_EQ(clip.frames.size(), stop + 1) << where;
    ExpectPrefixOf(clip, ref_, where);
    ExpectRecovers(g, where);
  }
}

TEST_F(Cancel, FromAnotherThreadAtAnyMoment) {
  Generator g(dir_.path());
  ASSERT_EQ(g.Load(), DS_OK) << g.error();
  // Delays spread over about one generation, measured first.
  const auto t0 = std::chrono::steady_clock::now();
  Clip timing;
  ASSERT_EQ(g.Generate(timing), DS_OK);
  const auto span = std::chrono::steady_clock::now() - t0;
  for (int i = 0; i <= 12; ++i) {
    const std::string where = "cancel after " + std::to_string(i) + "/12 of a generation";
    Clip clip;
    std::thread canceller([&] {
      std::this_thread::sleep_for(span * i / 12);
      ds_cancel(g.get());
    });
    const ds_status s = g.Generate(clip);
    canceller.join();
    EXPECT_TRUE(s == DS_OK || s == DS_ERR_CANCELLED) << where << ": " << s << " " << g.error();
    if (s == DS_OK) {
      EXPECT_EQ(clip.frames, ref_.frames) << where;
    } else {
      ExpectPrefixOf(clip, ref_, where);
    }
    ExpectRecovers(g, where);
  }
}

}  // namespace
