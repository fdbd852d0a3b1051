// The choice among timed cuBLASLt candidates (kernels/cuda/gemm_tuning.h): the heuristic's first
// stays unless another is clearly faster; candidates that could not run are never chosen. And the
// cache of choices on disk: what is written reads back, a damaged file costs only its damaged
// lines, a file that cannot be written is an error that leaves the entry in memory.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/gemm_tuning.h"

namespace ds::cuda {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

int Choose(const std::vector<double>& ms) { return ChooseAlgorithm(ms); }

TEST(GemmTuning, KeepsTheHeuristicsFirstWhenItIsFastest) {
  EXPECT_EQ(Choose({1.0}), 0);
  EXPECT_EQ(Choose({1.0, 1.5, 2.0}), 0);
  EXPECT_EQ(Choose({1.0, 1.0, 1.0}), 0);
}

TEST(GemmTuning, TakesTheFastestWhenClearlyFaster) {
  EXPECT_EQ(Choose({1.0, 0.9, 0.8, 0.95}), 2);
  EXPECT_EQ(Choose({2.0, 1.5, 1.5}), 1);  // of equal times, the heuristic's earlier one
  EXPECT_EQ(Choose({1.0, 1.2, 0.5}), 2);
}

TEST(GemmTuning, DifferencesWithinTheMarginAreNoise) {
  const double just_inside = 1.0 - GemmTuning::kMargin * 0.5, just_outside = 1.0 - GemmTuning::kMargin * 1.5;
  EXPECT_EQ(Choose({1.0, just_inside}), 0);
  EXPECT_EQ(Choose({1.0, just_outside}), 1);
  EXPECT_EQ(Choose({1.0, just_inside, just_outside}), 2);
}

TEST(GemmTuning, CandidatesThatDidNotRunAreNeverChosen) {
  EXPECT_EQ(Choose({1.0, -1.0, 0.0, kNaN}), 0);
  EXPECT_EQ(Choose({1.0, kInf}), 0);
  EXPECT_EQ(Choose({-1.0, 2.0, 1.5}), 2);  // the first could not run: the fastest that could
  EXPECT_EQ(Choose({kNaN, 3.0}), 1);
  EXPECT_EQ(Choose({-1.0, kNaN, 0.0}), -1);
  EXPECT_EQ(Choose({}), -1);
}

using Entries = std::map<std::string, std::vector<uint8_t>>;
namespace fs = std::filesystem;

// An empty directory of this test's own under the system's temporary one, removed at scope exit.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name)
      : path(fs::temp_directory_path() / ("ds_gemm_tuning_" + name + "_" + std::to_string(getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

TEST(GemmTuningCache, FormatParsesBack) {
  const Entries entries = {{"NVIDIA_H100/sm90/lt130000/1/0/4608/32760/1536", {0x00, 0x01, 0xab, 0xff, 0x10, 0x7f}},
                           {"other/key", std::vector<uint8_t>(64, 0x5a)}};
  EXPECT_EQ(GemmTuningCache::Parse(GemmTuningCache::Format(entries)), entries);
  EXPECT_TRUE(GemmTuningCache::Parse("").empty());
}

TEST(GemmTuningCache, DamagedLinesAreSkipped) {
  const Entries parsed = GemmTuningCache::Parse(
      "# a comment\n"
      "good 0aff\n"
      "odd-length 0af\n"
      "not-hex 0g\n"
      "upper-case 0AFF\n"
      "no-bytes\n"
      " leading-space 00\n"
      "\n"
      "crlf 01\r\n"
      "twice 01\n"
      "twice 02\n"
      "last 7f");
  const Entries want = {{"good", {0x0a, 0xff}}, {"crlf", {0x01}}, {"twice", {0x02}}, {"last", {0x7f}}};
  EXPECT_EQ(parsed, want);
}

TEST(GemmTuningCache, KeysHoldNoWhitespace) {
  EXPECT_EQ(GemmTuningCache::MakeKey({"NVIDIA H100 80GB HBM3", "sm90", "a\tb\nc"}), "NVIDIA_H100_80GB_HBM3/sm90/a_b_c");
}

TEST(GemmTuningCache, EntriesOutliveTheProcessThatWroteThem) {
  const ScratchDir scratch("outlive");
  const fs::path& dir = scratch.path;
  const std::string path = (dir / "sub" / "cache.txt").string();
  {
    GemmTuningCache cache(path);
    EXPECT_FALSE(cache.Find("k1"));
    const uint8_t a[] = {1, 2, 3}, b[] = {9};
    ASSERT_TRUE(cache.Insert("k1", a).ok());
    ASSERT_TRUE(cache.Insert("k2", b).ok());
    ASSERT_TRUE(cache.Insert("k1", b).ok());  // replaced
  }
  const GemmTuningCache again(path);
  ASSERT_TRUE(again.Find("k1"));
  EXPECT_EQ(*again.Find("k1"), std::vector<uint8_t>{9});
  EXPECT_EQ(*again.Find("k2"), std::vector<uint8_t>{9});
  EXPECT_FALSE(again.Find("k3"));
  for (const auto& entry : fs::directory_iterator(dir / "sub")) {
    EXPECT_EQ(entry.path().filename(), "cache.txt") << "a temporary file was left behind";
  }
}

TEST(GemmTuningCache, TwoWritersKeepEachOthersEntries) {
  const ScratchDir scratch("two");
  const fs::path& dir = scratch.path;
  const std::string path = (dir / "cache.txt").string();
  GemmTuningCache a(path), b(path);  // both read the file before either wrote
  const uint8_t x[] = {1}, y[] = {2};
  ASSERT_TRUE(a.Insert("from-a", x).ok());
  ASSERT_TRUE(b.Insert("from-b", y).ok());
  const GemmTuningCache read(path);
  EXPECT_TRUE(read.Find("from-a")) << "the second writer dropped the first one's entry";
  EXPECT_TRUE(read.Find("from-b"));
}

// Two backends of one process (cuda:0 and cuda:1, say) writing at once: each write goes through a
// file of its own, so none fails on the other's rename (with one temporary name per process,
// dozens of 600 did).
TEST(GemmTuningCache, WritersInOneProcessNeverShareATemporaryFile) {
  const ScratchDir scratch("threads");
  const fs::path& dir = scratch.path;
  const std::string path = (dir / "cache.txt").string();
  int failed[2] = {0, 0};
  auto writer = [&](int w) {
    GemmTuningCache cache(path);
    for (int i = 0; i < 150; ++i) {
      const uint8_t bytes[] = {static_cast<uint8_t>(w), static_cast<uint8_t>(i)};
      std::string key = std::to_string(w);  // (not "w" + …: GCC 12's -Wrestrict misfires on it)
      key += '/';
      key += std::to_string(i);
      if (!cache.Insert(key, bytes).ok()) ++failed[w];
    }
  };
  std::thread a(writer, 0), b(writer, 1);
  a.join();
  b.join();
  EXPECT_EQ(failed[0] + failed[1], 0);
  // Whoever renamed last wrote all of its own 150 entries at least (the other's are best effort).
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_GE(GemmTuningCache::Parse(text.str()).size(), 150u);
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename(), "cache.txt") << "a temporary file was left behind";
  }
}

TEST(GemmTuningCache, AnUnwritableFileIsAnErrorNotALoss) {
  const ScratchDir scratch("ro");
  const fs::path& dir = scratch.path;
  std::ofstream(dir / "file") << "x";  // a file where the cache's directory should be
  GemmTuningCache cache((dir / "file" / "cache.txt").string());
  const uint8_t a[] = {4};
  const Status s = cache.Insert("k", a);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("GEMM tuning cache"), std::string::npos) << s.message();
  ASSERT_TRUE(cache.Find("k"));
  EXPECT_EQ(*cache.Find("k"), std::vector<uint8_t>{4});
}

TEST(GemmTuningCache, NoPathReadsAndWritesNothing) {
  GemmTuningCache cache;
  const uint8_t a[] = {4};
  EXPECT_TRUE(cache.Insert("k", a).ok());
  EXPECT_TRUE(cache.Find("k"));
  EXPECT_TRUE(cache.path().empty());
}

}  // namespace
}  // namespace ds::cuda
