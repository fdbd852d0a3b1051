// Host-side pieces of the CUDA backend that need no GPU: the arena's bookkeeping and the device
// row addressing (checked against kernels/cpu/rows.h, the CPU backends' addressing).
#include <gtest/gtest.h>

#include <cstdint>

#include "kernels/cpu/rows.h"
#include "kernels/cuda/arena.h"
#include "kernels/cuda/row_layout.h"

namespace ds::cuda {
namespace {

TEST(CudaArena, BumpsAlignedAndReleasesToMarks) {
  alignas(256) static char base[4096];
  Arena arena(base, sizeof(base));
  auto a = arena.Allocate(10, "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, static_cast<void*>(base));
  const size_t mark = arena.Mark();
  auto b = arena.Allocate(100, "b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, static_cast<void*>(base + 256));
  EXPECT_EQ(arena.used(), 356u);
  arena.Release(mark);
  EXPECT_EQ(arena.used(), 10u);
  auto c = arena.Allocate(4096 - 256, "c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, static_cast<void*>(base + 256));
  EXPECT_EQ(arena.peak(), 4096u);
  auto d = arena.Allocate(1, "d");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kOutOfMemory);
  EXPECT_NE(d.status().message().find("d needs 1 bytes"), std::string::npos) << d.status().message();
  arena.Reset();
  EXPECT_EQ(arena.used(), 0u);
}

TEST(CudaArena, HugeRequestsFailWithoutOverflow) {
  alignas(256) static char base[1024];
  Arena arena(base, sizeof(base));
  ASSERT_TRUE(arena.Allocate(1000, "x").ok());
  EXPECT_FALSE(arena.Allocate(SIZE_MAX - 8, "huge").ok());  // start rounds past the capacity
  EXPECT_EQ(arena.used(), 1000u);
}

// Every addressing shape the engine uses: contiguous, a row slice of a wider buffer, [N, H, dh]
// heads of a fused qkv buffer, and leading dims that do not collapse into one stride.
TEST(CudaRowLayout, AddressesTheSameRowsAsTheCpuBackends) {
  alignas(64) static float buf[4096];
  std::vector<Tensor> views;
  views.push_back(Tensor::View(buf, DType::kF32, {7, 9}));
  Tensor slice = Tensor::View(buf, DType::kF32, {5, 6});
  slice.strides[0] = 11 * 4;
  views.push_back(slice);
  Tensor heads = Tensor::View(buf + 8, DType::kF32, {10, 3, 8});
  heads.strides[0] = 3 * 3 * 8 * 4;
  views.push_back(heads);
  Tensor odd = Tensor::View(buf, DType::kF32, {2, 3, 4, 5});
  odd.strides[2] = 7 * 4;
  odd.strides[1] = 4 * 7 * 4 + 12;
  odd.strides[0] = 1000;
  views.push_back(odd);
  views.push_back(Tensor::View(buf, DType::kF32, {13}));
  for (const Tensor& t : views) {
    const Rows cpu(t);
    const RowLayout gpu = RowsOf(t);
    ASSERT_EQ(gpu.count, cpu.count()) << t.shape_string();
    ASSERT_EQ(gpu.width, cpu.width());
    for (int64_t r = 0; r < cpu.count(); ++r) EXPECT_EQ(gpu.Row(r), cpu[r]) << t.shape_string() << " row " << r;
  }
}

}  // namespace
}  // namespace ds::cuda
