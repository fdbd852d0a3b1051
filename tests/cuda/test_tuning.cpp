// The choice among timed candidates (kernels/cuda/autotune.h): the default (cuBLASLt's first
// algorithm, the head dim's default attention kernel) stays unless another is clearly faster;
// candidates that could not run are never chosen. Which attention kernels are candidates, and the
// shape keys. And the cache of choices on disk (tuning_cache.h): what is written reads back, a
// damaged file costs only its damaged lines, a file that cannot be written is an error that leaves
// the entry in memory.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/attention/attention_choice.h"
#include "kernels/cuda/autotune.h"
#include "kernels/cuda/tuning_cache.h"
#include "tests/cuda/scoped_env.h"

namespace ds::cuda {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

int Choose(const std::vector<double>& ms) { return ChooseFastest(ms); }

TEST(Autotune, KeepsTheDefaultWhenItIsFastest) {
  EXPECT_EQ(Choose({1.0}), 0);
  EXPECT_EQ(Choose({1.0, 1.5, 2.0}), 0);
  EXPECT_EQ(Choose({1.0, 1.0, 1.0}), 0);
}

TEST(Autotune, TakesTheFastestWhenClearlyFaster) {
  EXPECT_EQ(Choose({1.0, 0.9, 0.8, 0.95}), 2);
  EXPECT_EQ(Choose({2.0, 1.5, 1.5}), 1);  // of equal times, the earlier one
  EXPECT_EQ(Choose({1.0, 1.2, 0.5}), 2);
}

TEST(Autotune, DifferencesWithinTheMarginAreNoise) {
  const double just_inside = 1.0 - kTuningMargin * 0.5, just_outside = 1.0 - kTuningMargin * 1.5;
  EXPECT_EQ(Choose({1.0, just_inside}), 0);
  EXPECT_EQ(Choose({1.0, just_outside}), 1);
  EXPECT_EQ(Choose({1.0, just_inside, just_outside}), 2);
}

TEST(Autotune, CandidatesThatDidNotRunAreNeverChosen) {
  EXPECT_EQ(Choose({1.0, -1.0, 0.0, kNaN}), 0);
  EXPECT_EQ(Choose({1.0, kInf}), 0);
  EXPECT_EQ(Choose({-1.0, 2.0, 1.5}), 2);  // the first could not run: the fastest that could
  EXPECT_EQ(Choose({kNaN, 3.0}), 1);
  EXPECT_EQ(Choose({-1.0, kNaN, 0.0}), -1);
  EXPECT_EQ(Choose({}), -1);
}

TEST(Autotune, ModesParseFromTheirSpellings) {
  EXPECT_EQ(ParseAutotune("0"), Autotune::kOff);
  EXPECT_EQ(ParseAutotune("off"), Autotune::kOff);
  EXPECT_EQ(ParseAutotune("recorded"), Autotune::kRecorded);
  EXPECT_EQ(ParseAutotune("all"), Autotune::kAll);
  for (const char* bad : {"", "1", "ALL", "on", "recorded ", "none"}) EXPECT_FALSE(ParseAutotune(bad)) << bad;
}

// A head dim's configurations as bench_cuda lists hd 128's: five mma.sync, two cp.async-fed wgmma,
// seven TMA-fed wgmma.
std::vector<FlashFamily> Hd128Families() {
  std::vector<FlashFamily> f(5, FlashFamily::kMmaSync);
  f.insert(f.end(), 2, FlashFamily::kWgmmaCpAsync);
  f.insert(f.end(), 7, FlashFamily::kWgmmaTma);
  return f;
}

TEST(AttentionTuning, CandidatesAreTheDefaultFirstThenItsRunnableKin) {
  const std::vector<FlashFamily> families = Hd128Families();
  const std::vector<bool> all(families.size(), true);
  EXPECT_EQ(AttentionCandidates(families, all, 7), (std::vector<int>{7, 8, 9, 10, 11, 12, 13}));
  EXPECT_EQ(AttentionCandidates(families, all, 9), (std::vector<int>{9, 7, 8, 10, 11, 12, 13}));
  EXPECT_EQ(AttentionCandidates(families, all, 6), (std::vector<int>{6, 5}));           // DS_FLASH_NO_WGMMA=tma
  EXPECT_EQ(AttentionCandidates(families, all, 3), (std::vector<int>{3, 0, 1, 2, 4}));  // before sm_90
}

TEST(AttentionTuning, ConfigurationsThatCannotRunAreNoCandidates) {
  const std::vector<FlashFamily> families = Hd128Families();
  std::vector<bool> runnable(families.size(), true);
  runnable[8] = runnable[12] = false;  // DS_FLASH_SKIP, say
  EXPECT_EQ(AttentionCandidates(families, runnable, 7), (std::vector<int>{7, 9, 10, 11, 13}));
  // The default is timed first whatever `runnable` says of it (it runs, or the call reports why).
  runnable[7] = false;
  EXPECT_EQ(AttentionCandidates(families, runnable, 7), (std::vector<int>{7, 9, 10, 11, 13}));
}

TEST(AttentionTuning, NoCandidatesForADefaultOutOfRange) {
  const std::vector<FlashFamily> families = Hd128Families();
  const std::vector<bool> all(families.size(), true);
  EXPECT_TRUE(AttentionCandidates(families, all, -1).empty());
  EXPECT_TRUE(AttentionCandidates(families, all, 14).empty());
  EXPECT_TRUE(AttentionCandidates(families, std::vector<bool>(3, true), 0).empty());  // sizes differ
  EXPECT_EQ(AttentionCandidates({FlashFamily::kMmaSync}, {true}, 0), std::vector<int>{0});
}

TEST(AttentionTuning, FamiliesFollowTheKernelKind) {
  EXPECT_EQ(FlashFamilyOf(false, false), FlashFamily::kMmaSync);
  EXPECT_EQ(FlashFamilyOf(true, false), FlashFamily::kWgmmaCpAsync);
  EXPECT_EQ(FlashFamilyOf(true, true), FlashFamily::kWgmmaTma);
}

TEST(AttentionTuning, ShapeKeysNameEverythingTheTimeDependsOn) {
  const std::string self =
      AttentionShapeKey(128, 32760, 32760, 12, DType::kBF16, DType::kBF16, DType::kBF16, DType::kBF16);
  EXPECT_EQ(self, "hd128/nq32760/nk32760/h12/bf16,bf16,bf16,bf16");
  EXPECT_EQ(AttentionShapeKey(64, 4608, 512, 24, DType::kF32, DType::kBF16, DType::kBF16, DType::kF32),
            "hd64/nq4608/nk512/h24/f32,bf16,bf16,f32");
  // Each field changes the key.
  const std::string others[] = {
      AttentionShapeKey(64, 32760, 32760, 12, DType::kBF16, DType::kBF16, DType::kBF16, DType::kBF16),
      AttentionShapeKey(128, 32761, 32760, 12, DType::kBF16, DType::kBF16, DType::kBF16, DType::kBF16),
      AttentionShapeKey(128, 32760, 512, 12, DType::kBF16, DType::kBF16, DType::kBF16, DType::kBF16),
      AttentionShapeKey(128, 32760, 32760, 40, DType::kBF16, DType::kBF16, DType::kBF16, DType::kBF16),
      AttentionShapeKey(128, 32760, 32760, 12, DType::kF32, DType::kBF16, DType::kBF16, DType::kBF16),
      AttentionShapeKey(128, 32760, 32760, 12, DType::kBF16, DType::kF32, DType::kBF16, DType::kBF16),
      AttentionShapeKey(128, 32760, 32760, 12, DType::kBF16, DType::kBF16, DType::kF32, DType::kBF16),
      AttentionShapeKey(128, 32760, 32760, 12, DType::kBF16, DType::kBF16, DType::kBF16, DType::kF32)};
  for (const std::string& other : others) EXPECT_NE(other, self);
  // And it is a valid cache key: no whitespace.
  EXPECT_EQ(TuningCache::MakeKey({self}), self);
}

using test::ScopedEnv;

TEST(AttentionTuning, KernelsNotYetRunOnAGpuAreTimedOnlyWhenAllowed) {
  EXPECT_TRUE(FlashRanOnAGpu("wgmma2_k128_s2_tma"));
  EXPECT_TRUE(FlashRanOnAGpu("w4x2_k64_s2_qs"));
  EXPECT_FALSE(FlashRanOnAGpu("wgmma2_k128_s2_tma_vmn"));
  EXPECT_FALSE(FlashRanOnAGpu("wgmma2_k176_s2_tma"));
  EXPECT_FALSE(FlashRanOnAGpu("a_kernel_added_tomorrow"));  // the list fails closed
  EXPECT_FALSE(FlashRanOnAGpu(""));
  {
    const ScopedEnv unset("DS_FLASH_UNVERIFIED", nullptr);
    EXPECT_FALSE(FlashUnverifiedAllowed());
  }
  {
    const ScopedEnv zero("DS_FLASH_UNVERIFIED", "0");
    EXPECT_FALSE(FlashUnverifiedAllowed());
  }
  {
    const ScopedEnv one("DS_FLASH_UNVERIFIED", "1");
    EXPECT_TRUE(FlashUnverifiedAllowed());
  }
}

TEST(TuningCache, PathFollowsTheEnvironment) {
  const ScopedEnv xdg("XDG_CACHE_HOME", "/xdg"), home("HOME", "/home/u");
  {
    const ScopedEnv none("DS_TUNING_CACHE", nullptr), old("DS_GEMM_TUNING_CACHE", nullptr);
    EXPECT_EQ(TuningCache::DefaultPath(), "/xdg/ditstream/kernel-tuning.txt");
    const ScopedEnv relative_xdg("XDG_CACHE_HOME", "relative");  // not absolute: ignored, as the spec says
    EXPECT_EQ(TuningCache::DefaultPath(), "/home/u/.cache/ditstream/kernel-tuning.txt");
  }
  {
    const ScopedEnv set("DS_TUNING_CACHE", "/tmp/x.txt"), old("DS_GEMM_TUNING_CACHE", "/tmp/old.txt");
    EXPECT_EQ(TuningCache::DefaultPath(), "/tmp/x.txt");
  }
  {
    // The variable's earlier name still works, "" (no file) included.
    const ScopedEnv none("DS_TUNING_CACHE", nullptr), old("DS_GEMM_TUNING_CACHE", "");
    EXPECT_EQ(TuningCache::DefaultPath(), "");
  }
}

using Entries = TuningCache::Entries;
namespace fs = std::filesystem;

// An empty directory of this test's own under the system's temporary one, removed at scope exit.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name)
      : path(fs::temp_directory_path() / ("ds_tuning_" + name + "_" + std::to_string(getpid()))) {
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

TEST(TuningCache, FormatParsesBack) {
  const Entries entries = {
      {"NVIDIA_H100/sm90/lt130000/gemm/1,0,4608,32760,1536", "0001abff107f"},
      {"NVIDIA_H100/sm90/lt130000/attention/hd128/nq32760/nk512/h12/bf16,bf16,bf16,bf16", "wgmma2_k128_s2_tma"},
      {"other/key", std::string(128, 'a')}};
  EXPECT_EQ(TuningCache::Parse(TuningCache::Format(entries)), entries);
  EXPECT_TRUE(TuningCache::Parse("").empty());
}

TEST(TuningCache, DamagedLinesAreSkipped) {
  const Entries parsed = TuningCache::Parse(
      "# a comment\n"
      "good 0aff\n"
      "two-values a b\n"
      "no-value\n"
      "empty-value \n"
      " leading-space 00\n"
      "\n"
      "crlf 01\r\n"
      "twice 01\n"
      "twice 02\n"
      "last w4x2_k64_s2");
  const Entries want = {{"good", "0aff"}, {"crlf", "01"}, {"twice", "02"}, {"last", "w4x2_k64_s2"}};
  EXPECT_EQ(parsed, want);
}

TEST(TuningCache, BytesRoundTripThroughHex) {
  const std::vector<uint8_t> bytes = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
  EXPECT_EQ(TuningCache::ToHex(bytes), "00017f80abff");
  EXPECT_EQ(TuningCache::FromHex("00017f80abff"), bytes);
  for (const char* bad : {"", "0", "0af", "0g", "0AFF", "0a f"}) EXPECT_FALSE(TuningCache::FromHex(bad)) << bad;
}

TEST(TuningCache, ValuesWithWhitespaceAreRefusedNotWritten) {
  const ScratchDir scratch("space");
  const std::string path = (scratch.path / "cache.txt").string();
  TuningCache cache(path);
  for (const char* bad : {"", "a b", "a\n", "\tx"}) {
    const Status s = cache.Insert("k", bad);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(cache.Insert("with space", "v").code(), Code::kInvalidArgument);
  EXPECT_FALSE(cache.Find("k"));
  EXPECT_FALSE(fs::exists(path));
}

TEST(TuningCache, KeysHoldNoWhitespace) {
  EXPECT_EQ(TuningCache::MakeKey({"NVIDIA H100 80GB HBM3", "sm90", "a\tb\nc"}), "NVIDIA_H100_80GB_HBM3/sm90/a_b_c");
}

TEST(TuningCache, EntriesOutliveTheProcessThatWroteThem) {
  const ScratchDir scratch("outlive");
  const fs::path& dir = scratch.path;
  const std::string path = (dir / "sub" / "cache.txt").string();
  {
    TuningCache cache(path);
    EXPECT_FALSE(cache.Find("k1"));
    ASSERT_TRUE(cache.Insert("k1", "010203").ok());
    ASSERT_TRUE(cache.Insert("k2", "09").ok());
    ASSERT_TRUE(cache.Insert("k1", "09").ok());  // replaced
  }
  const TuningCache again(path);
  ASSERT_TRUE(again.Find("k1"));
  EXPECT_EQ(*again.Find("k1"), "09");
  EXPECT_EQ(*again.Find("k2"), "09");
  EXPECT_FALSE(again.Find("k3"));
  for (const auto& entry : fs::directory_iterator(dir / "sub")) {
    EXPECT_EQ(entry.path().filename(), "cache.txt") << "a temporary file was left behind";
  }
}

TEST(TuningCache, TwoWritersKeepEachOthersEntries) {
  const ScratchDir scratch("two");
  const fs::path& dir = scratch.path;
  const std::string path = (dir / "cache.txt").string();
  TuningCache a(path), b(path);  // both read the file before either wrote
  ASSERT_TRUE(a.Insert("from-a", "01").ok());
  ASSERT_TRUE(b.Insert("from-b", "02").ok());
  const TuningCache read(path);
  EXPECT_TRUE(read.Find("from-a")) << "the second writer dropped the first one's entry";
  EXPECT_TRUE(read.Find("from-b"));
}

// Two backends of one process (cuda:0 and cuda:1, say) writing at once: each write goes through a
// file of its own, so none fails on the other's rename (with one temporary name per process,
// dozens of 600 did).
TEST(TuningCache, WritersInOneProcessNeverShareATemporaryFile) {
  const ScratchDir scratch("threads");
  const fs::path& dir = scratch.path;
  const std::string path = (dir / "cache.txt").string();
  int failed[2] = {0, 0};
  auto writer = [&](int w) {
    TuningCache cache(path);
    for (int i = 0; i < 150; ++i) {
      const std::string value = std::to_string(i);
      std::string key = std::to_string(w);  // (not "w" + …: GCC 12's -Wrestrict misfires on it)
      key += '/';
      key += std::to_string(i);
      if (!cache.Insert(key, value).ok()) ++failed[w];
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
  EXPECT_GE(TuningCache::Parse(text.str()).size(), 150u);
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename(), "cache.txt") << "a temporary file was left behind";
  }
}

TEST(TuningCache, AnUnwritableFileIsAnErrorNotALoss) {
  const ScratchDir scratch("ro");
  const fs::path& dir = scratch.path;
  std::ofstream(dir / "file") << "x";  // a file where the cache's directory should be
  TuningCache cache((dir / "file" / "cache.txt").string());
  const Status s = cache.Insert("k", "04");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tuning cache"), std::string::npos) << s.message();
  ASSERT_TRUE(cache.Find("k"));
  EXPECT_EQ(*cache.Find("k"), "04");
}

TEST(TuningCache, NoPathReadsAndWritesNothing) {
  TuningCache cache;
  EXPECT_TRUE(cache.Insert("k", "04").ok());
  EXPECT_TRUE(cache.Find("k"));
  EXPECT_TRUE(cache.path().empty());
}

}  // namespace
}  // namespace ds::cuda
