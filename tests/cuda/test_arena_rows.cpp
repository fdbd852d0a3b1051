// Host-side pieces of the CUDA backend that need no GPU: the arena's bookkeeping, the device row
// addressing (checked against kernels/cpu/rows.h, the CPU backends' addressing), and the transpose
// kernel's tile steps run block by block, thread by thread, as the GPU runs them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/rows.h"
#include "kernels/cuda/arena.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/cuda/transpose_tile.h"

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
  // Dims of size 1 whose stride matches a neighbour's by accident (the step of the 1 is never
  // taken): rows are 100 floats apart across a, 4 apart across b, not evenly spaced.
  Tensor unit = Tensor::View(buf, DType::kF32, {3, 1, 2, 4});
  unit.strides[2] = 16;
  unit.strides[1] = 400;
  unit.strides[0] = 400;
  views.push_back(unit);
  Tensor unit_inner = Tensor::View(buf, DType::kF32, {3, 1, 4});
  unit_inner.strides[1] = 12;
  unit_inner.strides[0] = 64;
  views.push_back(unit_inner);
  views.push_back(Tensor::View(buf, DType::kF32, {1, 5, 4}));
  for (const Tensor& t : views) {
    const Rows cpu(t);
    const RowLayout gpu = RowsOf(t);
    ASSERT_EQ(gpu.count, cpu.count()) << t.shape_string();
    ASSERT_EQ(gpu.width, cpu.width());
    for (int64_t r = 0; r < cpu.count(); ++r) {
      // Row r's address from its index in each leading dim, the strides taken as they are.
      int64_t offset = 0;
      for (int64_t i = t.ndim - 2, rest = r; i >= 0; --i) {
        offset += rest % t.shape[i] * t.strides[i];
        rest /= t.shape[i];
      }
      float* const row = reinterpret_cast<float*>(static_cast<char*>(t.data) + offset);
      EXPECT_EQ(cpu[r], row) << t.shape_string() << " row " << r;
      EXPECT_EQ(gpu.Row(r), row) << t.shape_string() << " row " << r;
    }
  }
}

// What sends rows to the vectorised kernels: the base and every stride that is stepped.
TEST(CudaRowLayout, RowsAreAlignedOnlyWhenTheBaseAndEverySteppedStrideAre) {
  alignas(64) static float buf[8192];
  const Tensor rows = Tensor::View(buf, DType::kF32, {4, 1536});
  EXPECT_TRUE(RowsAligned(RowsOf(rows), 16));
  Tensor shifted = rows;
  shifted.data = buf + 2;  // 8 bytes in, the stride still a multiple of 16
  EXPECT_FALSE(RowsAligned(RowsOf(shifted), 16));
  EXPECT_TRUE(RowsAligned(RowsOf(shifted), 8));
  Tensor odd_stride = rows;
  odd_stride.strides[0] = 1539 * 4;
  EXPECT_FALSE(RowsAligned(RowsOf(odd_stride), 16));
  Tensor unit = Tensor::View(buf, DType::kF32, {3, 1, 8});
  unit.strides[1] = 4;  // never stepped
  unit.strides[0] = 64;
  EXPECT_TRUE(RowsAligned(RowsOf(unit), 16));
  unit.strides[0] = 68;
  EXPECT_FALSE(RowsAligned(RowsOf(unit), 16));
}

// The kernel's launch: grid.x over row tiles, grid.y (capped as the launcher caps it, small here so
// that blocks stride over several column tiles) over column tiles; every thread of a block runs
// phase 1, then every thread phase 2 (the barrier between them).
void EmulateTranspose(const RowLayout& x, const RowLayout& y, int64_t grid_y) {
  using namespace transpose;
  const int64_t grid_x = (x.count + kTile - 1) / kTile;
  Tile tile;
  for (int64_t bx = 0; bx < grid_x; ++bx) {
    for (int64_t by = 0; by < grid_y; ++by) {
      for (int64_t c0 = by * kTile; c0 < x.width; c0 += grid_y * kTile) {
        for (auto& row : tile)
          for (float& v : row) v = std::nanf("");  // stale shared memory
        for (int ty = 0; ty < kRowsPerPass; ++ty)
          for (int tx = 0; tx < kTile; ++tx) Load(x, bx * kTile, c0, tx, ty, tile);
        for (int ty = 0; ty < kRowsPerPass; ++ty)
          for (int tx = 0; tx < kTile; ++tx) Store(x, y, bx * kTile, c0, tx, ty, tile);
      }
    }
  }
}

TEST(CudaTranspose, EmulatedBlocksTransposeStridedViews) {
  for (auto [rows, cols, grid_y] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {37, 5, 1}, {65, 96, 2}, {33, 200, 3}, {300, 3, 1}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols) + " grid.y " + std::to_string(grid_y));
    const int64_t xld = cols + 3, yld = rows + 5;
    std::vector<float> xs(static_cast<size_t>(rows * xld)), ys(static_cast<size_t>(cols * yld), -7.0f);
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(i) * 0.5f;
    Tensor x = Tensor::View(xs.data(), DType::kF32, {rows, cols}),
           y = Tensor::View(ys.data(), DType::kF32, {cols, rows});
    x.strides[0] = xld * static_cast<int64_t>(sizeof(float));
    y.strides[0] = yld * static_cast<int64_t>(sizeof(float));
    EmulateTranspose(RowsOf(x), RowsOf(y), grid_y);
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t r = 0; r < yld; ++r) {
        const float want = r < rows ? xs[static_cast<size_t>(r * xld + c)] : -7.0f;  // padding untouched
        ASSERT_EQ(ys[static_cast<size_t>(c * yld + r)], want) << "y[" << c << "][" << r << "]";
      }
    }
  }
}

}  // namespace
}  // namespace ds::cuda
