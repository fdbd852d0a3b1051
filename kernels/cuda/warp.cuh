// Warp-level helpers shared by the .cu files (device code only).
#pragma once

#include <cstdint>

namespace ds::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

constexpr int64_t CeilDiv64(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace ds::cuda
