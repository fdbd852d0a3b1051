// The transpose kernel's tile steps as plain functions of (thread, tile origin), shared by the
// kernel (transpose.cu) and the CPU emulation in tests/cuda/test_arena_rows.cpp, which runs every
// thread of every block, phase by phase, on host memory: CI checks the kernel's index math without
// a GPU.
#pragma once

#include <cstdint>

#include "kernels/cuda/hd.h"
#include "kernels/cuda/row_layout.h"

namespace ds::cuda::transpose {

// A 32 x 32 tile read along x's rows and written along y's rows (both coalesced on a GPU), through
// shared memory padded by one column so that the column reads hit 32 banks. A block is 32 x 8
// threads; each thread moves 4 elements per phase.
constexpr int kTile = 32, kRowsPerPass = 8;
using Tile = float[kTile][kTile + 1];

// Phase 1 (before the barrier): thread (tx, ty) loads its elements of the tile at (r0, c0) of x.
DS_HD void Load(const RowLayout& x, int64_t r0, int64_t c0, int tx, int ty, Tile& tile) {
  for (int i = ty; i < kTile; i += kRowsPerPass) {
    const int64_t r = r0 + i, c = c0 + tx;
    if (r < x.count && c < x.width) tile[i][tx] = x.Row(r)[c];
  }
}

// Phase 2 (after it): thread (tx, ty) stores its elements, transposed, into y.
DS_HD void Store(const RowLayout& x, const RowLayout& y, int64_t r0, int64_t c0, int tx, int ty, const Tile& tile) {
  for (int i = ty; i < kTile; i += kRowsPerPass) {
    const int64_t c = c0 + i, r = r0 + tx;
    if (c < x.width && r < x.count) y.Row(c)[r] = tile[tx][i];
  }
}

}  // namespace ds::cuda::transpose
