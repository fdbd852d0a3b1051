// Running out of memory: an allocation that fails anywhere in ds_load or ds_generate must come back
// as DS_ERR_OUT_OF_MEMORY with a message (no crash, no std::terminate from a worker thread, no leak
// under LeakSanitizer), and the generator must work normally afterwards.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "tests/faults/alloc_hook.h"
#include "tests/faults/fault_util.h"

namespace {

using faults::Clip;
using faults::Generator;
using faults::ScratchDir;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

// Failure points tried per sweep: every one up to a count, evenly spaced beyond (bounds the time).
std::vector<long> FailurePoints(long total, long every_up_to = 60, long spaced = 140) {
  std::vector<long> points;
  for (long k = 0; k < std::min(total, every_up_to); ++k) points.push_back(k);
  const long step = std::max(1L, (total - every_up_to) / spaced);
  for (long k = every_up_to; k < total; k += step) points.push_back(k);
  return points;
}

TEST(Allocation, LoadFailsCleanlyAtEveryAllocation) {
  ScratchDir dir("alloc-load");
  ASSERT_EQ(ds::testing::WriteRandomModel(dir.path(), faults::SmallSpec(), 4), "");
  long total = 0;
  {
    Generator probe(dir.path());
    faults::CountAllocations();
    const ds_status s = probe.Load();
    total = faults::StopCountingAllocations();
    ASSERT_EQ(s, DS_OK) << probe.error();
  }
  std::printf("[ info ] ds_load makes %ld allocations\n", total);
  int failed = 0;
  for (long k : FailurePoints(total)) {
    Generator g(dir.path());
    faults::FailAllocation(k);
    const ds_status s = g.Load();
    faults::StopCountingAllocations();
    if (!faults::AllocationFailed()) continue;
    ++failed;
    EXPECT_EQ(s, DS_ERR_OUT_OF_MEMORY) << "allocation " << k << ": " << g.error();
    EXPECT_FALSE(g.error().empty());
    ASSERT_EQ(g.Load(), DS_OK) << "after a failure at allocation " << k << ": " << g.error();
  }
  EXPECT_GT(failed, 0);
}

// Fails allocation k of a fresh generator's first ds_generate, for each k: the status is
// DS_ERR_OUT_OF_MEMORY, frames delivered before the failure are the reference's, and the next clip
// of the same generator equals the reference.
void SweepGenerate(const std::string& model, const std::function<void(Generator&)>& configure, const Clip& ref,
                   const std::vector<long>& points) {
  int failed = 0;
  for (long k : points) {
    Generator g(model);  // fresh, so that text encoding (cached later) is reached too
    if (configure) configure(g);
    ASSERT_EQ(g.Load(), DS_OK) << g.error();
    Clip clip;
    faults::FailAllocation(k);
    const ds_status s = g.Generate(clip);
    faults::StopCountingAllocations();
    if (!faults::AllocationFailed()) continue;
    ++failed;
    EXPECT_EQ(s, DS_ERR_OUT_OF_MEMORY) << "allocation " << k << ": " << g.error();
    ASSERT_LE(clip.frames.size(), ref.frames.size());
    for (size_t i = 0; i < clip.frames.size(); ++i) EXPECT_EQ(clip.frames[i], ref.frames[i]) << "frame " << i;
    Clip again;
    ASSERT_EQ(g.Generate(again), DS_OK) << "after a failure at allocation " << k << ": " << g.error();
    EXPECT_EQ(again.frames, ref.frames) << "after a failure at allocation " << k;
  }
  EXPECT_GT(failed, 0);
}

TEST(Allocation, GenerateFailsCleanlyAtEveryAllocationAndRecovers) {
  ScratchDir dir("alloc-generate");
  ASSERT_EQ(ds::testing::WriteRandomModel(dir.path(), faults::SmallSpec(), 5), "");
  const Clip ref = faults::Reference(dir.path());
  long total = 0;
  {
    Generator probe(dir.path());
    ASSERT_EQ(probe.Load(), DS_OK) << probe.error();
    Clip clip;
    faults::CountAllocations();
    const ds_status s = probe.Generate(clip);
    total = faults::StopCountingAllocations();
    ASSERT_EQ(s, DS_OK) << probe.error();
  }
  std::printf("[ info ] ds_generate makes %ld allocations\n", total);
  SweepGenerate(dir.path(), {}, ref, FailurePoints(total));
}

// The same for a Wan2.1 folder (the tiny fixture at its smallest sizes): text encoder, transformer
// workspace, sampler, the VAE's buffers and the frame path. Its large buffers come from
// Backend::NewBuffer (aligned_alloc, not operator new) and fail with the same status by design.
TEST(Allocation, WanGenerateFailsCleanlyAtEveryAllocationAndRecovers) {
  const char* root = std::getenv("DS_SOURCE_ROOT");
  const std::string model = std::string(root ? root : ".") + "/tests/fixtures/wan/tiny";
  auto configure = [](Generator& g) {
    for (auto [name, value] : {std::pair{"width", "32"}, {"height", "16"}, {"frames", "5"}, {"steps", "2"}}) {
      EXPECT_EQ(ds_set_option(g.get(), name, value), DS_OK) << name;
    }
  };
  Clip ref;
  long total = 0;
  {
    Generator probe(model);
    configure(probe);
    const ds_status loaded = probe.Load();
    if (loaded != DS_OK && probe.error().find("sentencepiece") != std::string::npos) GTEST_SKIP() << probe.error();
    ASSERT_EQ(loaded, DS_OK) << probe.error();
    faults::CountAllocations();
    const ds_status s = probe.Generate(ref);
    total = faults::StopCountingAllocations();
    ASSERT_EQ(s, DS_OK) << probe.error();
  }
  std::printf("[ info ] Wan ds_generate makes %ld allocations\n", total);
  SweepGenerate(model, configure, ref, FailurePoints(total, 40, 80));
}

long VirtualMemoryBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  statm >> pages;
  return pages * sysconf(_SC_PAGESIZE);
}

// In the death-test child: caps the address space with room to map the weights and some, not to
// convert them all, then loads. Exits 0 on a clean out-of-memory error, having removed the child's
// own copy of the folder (a death-test child re-runs the test and leaves by _Exit).
[[noreturn]] void LoadUnderAddressSpaceCap(const ScratchDir& dir, long weights) {
  Generator g(dir.path(), 1);
  const auto cap = static_cast<rlim_t>(VirtualMemoryBytes() + weights + weights / 2);
  const rlimit limit{cap, cap};
  if (setrlimit(RLIMIT_AS, &limit) != 0) std::_Exit(3);
  const ds_status s = g.Load();
  std::fprintf(stderr, "status %d: %s\n", s, g.error().c_str());
  std::error_code ec;
  std::filesystem::remove_all(dir.path(), ec);
  std::_Exit(s == DS_ERR_OUT_OF_MEMORY ? 0 : 1);
}

// The real thing, malloc and mmap included: a child process whose address space cannot hold the
// model's float32 weights. ASan reserves terabytes of shadow memory and treats a failed operator
// new as fatal by design, so this runs in plain builds only (the hook above covers ASan builds).
TEST(Allocation, AddressSpaceTooSmallForTheModelIsAnError) {
  if (kAsan) GTEST_SKIP() << "RLIMIT_AS is meaningless under AddressSanitizer";
  ScratchDir dir("alloc-rlimit");
  ds::testing::RandomModelSpec spec = faults::SmallSpec();
  spec.dim = 256;
  spec.heads = 4;
  spec.ffn = 1024;
  spec.layers = 4;
  ASSERT_EQ(ds::testing::WriteRandomModel(dir.path(), spec, 6), "");
  const long weights = static_cast<long>(std::filesystem::file_size(dir / "model.safetensors"));
  ASSERT_GT(weights, 16L << 20) << "the model must be big enough to exceed the cap";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(LoadUnderAddressSpaceCap(dir, weights), ::testing::ExitedWithCode(0), "out of memory|cannot allocate");
}

}  // namespace
