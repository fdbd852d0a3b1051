// Two generators in one process at once (two GStreamer elements, two FFmpeg filters): each in its
// own thread, on the same model folder, must produce exactly what it produces alone.
#include <thread>

#include "tests/faults/fault_util.h"

namespace {

using faults::Clip;
using faults::Generator;
using faults::ScratchDir;

// A clip and its continuation, as one generator makes them.
std::vector<Clip> TwoClips(const std::string& model, int64_t seed, std::string* error) {
  Generator g(model);
  ds_set_option(g.get(), "seed", std::to_string(seed).c_str());
  std::vector<Clip> clips(2);
  if (g.Load() != DS_OK || g.Generate(clips[0]) != DS_OK || g.Generate(clips[1], 1) != DS_OK) *error = g.error();
  return clips;
}

void ExpectSame(const std::vector<Clip>& got, const std::vector<Clip>& want, const std::string& who) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t c = 0; c < got.size(); ++c) {
    EXPECT_EQ(got[c].frames, want[c].frames) << who << ", clip " << c;
    EXPECT_EQ(got[c].indices, want[c].indices) << who << ", clip " << c;
  }
}

TEST(Concurrency, TwoGeneratorsInTwoThreadsMatchSequentialRuns) {
  ScratchDir dir("concurrency");
  ASSERT_EQ(ds::testing::WriteRandomModel(dir.path(), faults::SmallSpec(), 9), "");
  std::string error;
  const std::vector<Clip> seq7 = TwoClips(dir.path(), 7, &error);
  ASSERT_EQ(error, "");
  const std::vector<Clip> seq8 = TwoClips(dir.path(), 8, &error);
  ASSERT_EQ(error, "");
  ASSERT_NE(seq7[0].frames, seq8[0].frames);

  for (int round = 0; round < 3; ++round) {
    // Same seed in both threads, then different seeds (which would expose any shared state).
    const int64_t seed_b = round == 0 ? 7 : 8;
    std::vector<Clip> a, b;
    std::string error_a, error_b;
    std::thread ta([&] { a = TwoClips(dir.path(), 7, &error_a); });
    std::thread tb([&] { b = TwoClips(dir.path(), seed_b, &error_b); });
    ta.join();
    tb.join();
    ASSERT_EQ(error_a, "");
    ASSERT_EQ(error_b, "");
    const std::string where = "round " + std::to_string(round);
    ExpectSame(a, seq7, where + ", thread a");
    ExpectSame(b, seed_b == 7 ? seq7 : seq8, where + ", thread b");
  }
}

}  // namespace
