// The index and numerics layer of the flash attention kernel, shared by the device code and by the
// CPU emulation in tests/cuda/test_flash_layout.cpp (which runs without a GPU): tile traits, which
// query/key tile a block handles, the shared-memory swizzle, the lane → address maps of ldmatrix,
// the mma.sync m16n8k16 fragment maps, and the per-lane steps of the online softmax.
//
// Everything here is a pure function of its arguments, so the emulation exercises the same index
// math and the same arithmetic as the kernel; only the warp-collective glue (ldmatrix, mma.sync,
// quad shuffles, cp.async, barriers) differs between the two.
//
// Notation: a warp owns 16 query rows (one m16 tile). lane = 0..31, g = lane / 4 ("groupID" in the
// PTX ISA), t = lane % 4 ("threadID_in_group"). Elements are bf16 in shared memory, f32 in the
// accumulators. Shapes in comments are [rows, cols].
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cuda/hd.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#else
#include <cmath>
#endif

namespace ds::cuda::flash {

// ---- tile traits -----------------------------------------------------------------------------

// Every compile-time constant of the kernel, derived from the head dim in one place.
template <int kHeadDim_>
struct Traits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kRowsPerWarp = 16;  // one m16 MMA tile of queries per warp
  static constexpr int kBlockM = 128;      // queries per block
  // Keys per main-loop step. Larger tiles amortise the softmax bookkeeping; hd128 stops at 64 so
  // the S (32 regs) and O (64 regs) accumulators leave room for the Q fragments (32 regs).
  static constexpr int kBlockN = kHeadDim <= 64 ? 128 : 64;
  static constexpr int kWarps = kBlockM / kRowsPerWarp;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kStages = 2;  // K/V tiles in flight: load tile j+1 while computing tile j

  static constexpr int kRowBytes = kHeadDim * 2;        // one bf16 row of Q, K or V in shared memory
  static constexpr int kChunksPerRow = kRowBytes / 16;  // 16-byte cp.async / ldmatrix units
  static constexpr int kQBytes = kBlockM * kRowBytes;
  static constexpr int kKVTileBytes = kBlockN * kRowBytes;  // one K or one V tile
  static constexpr int kSmemBytes = kQBytes + 2 * kStages * kKVTileBytes;

  static constexpr int kQkSteps = kHeadDim / 16;  // k16 steps of S = Q·Kᵀ
  static constexpr int kSTiles = kBlockN / 8;     // n8 tiles of S per warp
  static constexpr int kPvSteps = kBlockN / 16;   // k16 steps of O += P·V
  static constexpr int kOTiles = kHeadDim / 8;    // n8 tiles of O per warp

  static_assert(kHeadDim == 32 || kHeadDim == 64 || kHeadDim == 128, "head dims 32, 64, 128");
  static_assert(kBlockM == kWarps * kRowsPerWarp, "each warp owns exactly one m16 row tile");
  static_assert(kHeadDim % 16 == 0 && kBlockN % 16 == 0, "MMA k-steps of 16");
  static_assert(kSTiles % 2 == 0 && kOTiles % 2 == 0, "ldmatrix.x4 loads two n8 tiles at a time");
  static_assert(kRowBytes % 16 == 0, "rows are whole 16-byte chunks");
  static_assert((kBlockM * kChunksPerRow) % kThreads == 0, "Q tile loads split evenly over threads");
  static_assert((kBlockN * kChunksPerRow) % kThreads == 0, "K/V tile loads split evenly");
  static_assert(kRowBytes >= 64, "the swizzle needs 8 consecutive rows to cover all 8 bank groups");
  static_assert(kSmemBytes <= 227 * 1024, "fits the opt-in shared memory of sm_80 and sm_90");
};

// ---- which tiles a block handles ---------------------------------------------------------------

struct Range {
  int begin;  // first row (query or key index)
  int rows;   // valid rows, ≤ the tile size; the rest of the tile is zero-filled and masked
};

DS_HD int CeilDiv(int a, int b) { return (a + b - 1) / b; }

// Grid: x = query tile, y = head. Query tile `m_block` covers queries [m_block·kBlockM, …).
template <class T>
DS_HD Range QueryTile(int m_block, int nq) {
  const int begin = m_block * T::kBlockM;
  const int rows = nq - begin < T::kBlockM ? nq - begin : T::kBlockM;
  return {begin, rows};
}

template <class T>
DS_HD int KeyTileCount(int nk) {
  return CeilDiv(nk, T::kBlockN);
}

template <class T>
DS_HD Range KeyTile(int n_block, int nk) {
  const int begin = n_block * T::kBlockN;
  const int rows = nk - begin < T::kBlockN ? nk - begin : T::kBlockN;
  return {begin, rows};
}

// Global → shared copy of a tile of `kRows` rows: iteration `it` of thread `tid` moves one 16-byte
// chunk. Consecutive threads take consecutive chunks of a row, so a warp reads whole rows.
struct Chunk {
  int row;
  int col;  // first element of the 8-element chunk
};

template <class T, int kRows>
struct TileCopy {
  static constexpr int kIters = kRows * T::kChunksPerRow / T::kThreads;
  DS_HD static Chunk At(int tid, int it) {
    const int idx = it * T::kThreads + tid;
    return {idx / T::kChunksPerRow, (idx % T::kChunksPerRow) * 8};
  }
};

// ---- shared memory swizzle -----------------------------------------------------------------------

// Byte offset of element (row, col) in a tile of bf16 rows of kRowBytes. The 16-byte chunk index
// inside each 128-byte line is XORed with a per-row key so that the 8 row addresses of one
// ldmatrix phase (8 consecutive rows, same column) land in 8 different bank groups; without it,
// rows of 128 or 256 bytes all start in bank 0 and ldmatrix serialises 8-way (64-byte rows: 4-way).
template <int kRowBytes>
DS_HD uint32_t SwizzledOffset(int row, int col) {
  const uint32_t offset = static_cast<uint32_t>(row * kRowBytes + col * 2);
  const uint32_t key = static_cast<uint32_t>(kRowBytes >= 128 ? row : row * kRowBytes / 128) & 7u;
  return offset ^ (key << 4);
}

// ---- ldmatrix: which row address each lane supplies ----------------------------------------------

// ldmatrix.x4 reads four 8×8 b16 matrices; lanes 8m..8m+7 supply the addresses of rows 0..7 of
// matrix m, and register m of every lane receives its piece of matrix m. These give the (row, col)
// inside a 16×16 smem block whose row address lane `lane` supplies, for the three operands.
struct RowCol {
  int row;
  int col;
};

// A operand (Q) 16×16 [query, dim]: matrices (rows 0-7, cols 0-7), (8-15, 0-7), (0-7, 8-15),
// (8-15, 8-15) = registers a0a1, a2a3, a4a5, a6a7 of the mma A fragment.
DS_HD RowCol LdmatrixA(int lane) { return {(lane & 7) + 8 * ((lane >> 3) & 1), 8 * (lane >> 4)}; }

// B operand of S = Q·Kᵀ from K stored [key, dim] (key = n, dim = k): without .trans lane (g, t)
// receives (row g, cols 2t, 2t+1) = (n = g, k = 2t, 2t+1), exactly the B fragment. Matrices
// (keys 0-7, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 0-7), (keys 8-15, dims 8-15) =
// b0b1, b2b3 of key tile 0, then b0b1, b2b3 of key tile 1.
DS_HD RowCol LdmatrixK(int lane) { return {(lane & 7) + 8 * (lane >> 4), 8 * ((lane >> 3) & 1)}; }

// B operand of O += P·V from V stored [key, dim] (key = k, dim = n): with .trans lane (g, t)
// receives (rows 2t, 2t+1, col g) = (k = 2t, 2t+1, n = g). Matrices (keys 0-7, dims 0-7),
// (keys 8-15, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 8-15) = b0b1, b2b3 of dim tile 0,
// then of dim tile 1.
DS_HD RowCol LdmatrixV(int lane) { return {(lane & 7) + 8 * ((lane >> 3) & 1), 8 * (lane >> 4)}; }

// ---- mma.sync.m16n8k16 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16") -----------------

DS_HD int Group(int lane) { return lane >> 2; }
DS_HD int InGroup(int lane) { return lane & 3; }

// A [16, 16]: element i = 0..7 of a lane (register i / 2, half i % 2).
DS_HD RowCol FragA(int lane, int i) {
  return {Group(lane) + 8 * ((i >> 1) & 1), 2 * InGroup(lane) + (i & 1) + 8 * (i >> 2)};
}
// B [16 (k), 8 (n)]: element i = 0..3 (register i / 2, half i % 2).
DS_HD RowCol FragB(int lane, int i) { return {2 * InGroup(lane) + (i & 1) + 8 * (i >> 1), Group(lane)}; }
// C/D [16, 8] f32: element i = 0..3. Elements 0, 1 are on row g, elements 2, 3 on row g + 8.
DS_HD RowCol FragC(int lane, int i) { return {Group(lane) + 8 * (i >> 1), 2 * InGroup(lane) + (i & 1)}; }

// ---- bf16 packing ----------------------------------------------------------------------------------

// Round to nearest even (the device's cvt.rn.bf16x2.f32); NaN stays NaN.
DS_HD uint16_t Bf16Bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

DS_HD float Bf16ToFloat(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// Two floats as one mma operand register: `lo` in bits 0-15 (the lower-numbered element).
DS_HD uint32_t PackBf16x2(float lo, float hi) {
#if defined(__CUDA_ARCH__)
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
#else
  return static_cast<uint32_t>(Bf16Bits(lo)) | (static_cast<uint32_t>(Bf16Bits(hi)) << 16);
#endif
}

// ---- online softmax, per lane ------------------------------------------------------------------------
//
// A lane holds, for each n8 tile of S, elements 0, 1 of row g and 2, 3 of row g + 8 (FragC); the
// four lanes of a quad (same g) hold a row between them. Running state per row half h ∈ {0, 1}:
// max of the scores seen so far in log2 units (score · scale · log2 e) and this lane's partial
// sum of exp2(score − max); the sum is reduced over the quad once, in the epilogue.

constexpr float kNegInf = -__builtin_huge_valf();

DS_HD float Exp2(float x) {
#if defined(__CUDA_ARCH__)
  return exp2f(x);
#else
  return std::exp2(x);
#endif
}

DS_HD float Max(float a, float b) { return a > b ? a : b; }

template <class T>
struct SoftmaxState {
  float max[2] = {kNegInf, kNegInf};
  float sum[2] = {0.0f, 0.0f};
};

// Scores of keys ≥ nk (the zero-filled tail of the last key tile) become −inf.
template <class T>
DS_HD void MaskKeys(float (&s)[T::kSTiles][4], int lane, int key_begin, int nk) {
  for (int nt = 0; nt < T::kSTiles; ++nt) {
    for (int i = 0; i < 4; ++i) {
      if (key_begin + nt * 8 + FragC(lane, i).col >= nk) s[nt][i] = kNegInf;
    }
  }
}

// This lane's max of the raw scores of each row half; the caller reduces it over the quad.
template <class T>
DS_HD void RowMax(const float (&s)[T::kSTiles][4], float (&out)[2]) {
  out[0] = out[1] = kNegInf;
  for (int nt = 0; nt < T::kSTiles; ++nt) {
    for (int i = 0; i < 4; ++i) out[i >> 1] = Max(out[i >> 1], s[nt][i]);
  }
}

// Factor that moves a sum taken against `old_max` onto `new_max` (both in log2 units).
DS_HD float Rescale(float old_max, float new_max) { return old_max == kNegInf ? 0.0f : Exp2(old_max - new_max); }

// One key tile: given the quad-reduced raw row maxima of this tile, rescale O and the partial sums
// to the new running max, and replace the scores by p = exp2(score·scale_log2 − max) in place.
template <class T>
DS_HD void SoftmaxStep(float (&s)[T::kSTiles][4], float (&o)[T::kOTiles][4], SoftmaxState<T>& st,
                       const float (&tile_max)[2], float scale_log2) {
  for (int h = 0; h < 2; ++h) {
    const float new_max = Max(st.max[h], tile_max[h] * scale_log2);
    // Only −inf while every key seen so far is masked (never after a valid one): subtract 0 then.
    const float ref = new_max == kNegInf ? 0.0f : new_max;
    const float alpha = Rescale(st.max[h], ref);
    st.max[h] = new_max;
    st.sum[h] *= alpha;
    for (int dt = 0; dt < T::kOTiles; ++dt) {
      o[dt][2 * h] *= alpha;
      o[dt][2 * h + 1] *= alpha;
    }
    for (int nt = 0; nt < T::kSTiles; ++nt) {
      for (int i = 2 * h; i < 2 * h + 2; ++i) {
        s[nt][i] = Exp2(s[nt][i] * scale_log2 - ref);
        st.sum[h] += s[nt][i];
      }
    }
  }
}

// P as the A operand of k-step `kk` of O += P·V: the C fragments of S tiles 2kk and 2kk + 1 are,
// element for element, the A fragment of the 16 keys they span (FragC(tile 2kk + j, i) ==
// FragA(4j + i) with the column shifted by 8j), so P never leaves registers.
template <class T>
DS_HD void PackP(const float (&p)[T::kSTiles][4], int kk, uint32_t (&a)[4]) {
  a[0] = PackBf16x2(p[2 * kk][0], p[2 * kk][1]);
  a[1] = PackBf16x2(p[2 * kk][2], p[2 * kk][3]);
  a[2] = PackBf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]);
  a[3] = PackBf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3]);
}

// 1 / (quad-reduced sum) for the epilogue; 0 for rows past nq, whose sums may be 0.
DS_HD float InverseSum(float sum) { return sum > 0.0f ? 1.0f / sum : 0.0f; }

// ---- kernel parameters -----------------------------------------------------------------------------

// q, k, v: bf16 [tokens, heads, head_dim] with element strides between tokens and between heads
// (so they can be slices of one fused qkv buffer); o: f32 with its own strides.
struct Params {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  float* o = nullptr;
  int64_t q_row = 0, q_head = 0;
  int64_t k_row = 0, k_head = 0;
  int64_t v_row = 0, v_head = 0;
  int64_t o_row = 0, o_head = 0;
  int nq = 0, nk = 0, heads = 0;
  float scale_log2 = 0.0f;  // softmax scale · log2(e): scores go through exp2
};

constexpr float kLog2e = 1.4426950408889634f;

}  // namespace ds::cuda::flash
