// The index and numerics layer of the flash attention kernel, shared by the device code and by the
// CPU emulation in tests/cuda/test_flash_layout.cpp (which runs without a GPU): tile traits, which
// query/key tile a block handles, the shared-memory swizzle, the lane → address maps of ldmatrix,
// the mma.sync m16n8k16 fragment maps, and the per-lane steps of the online softmax.
//
// Everything here is a pure function of its arguments, so the emulation exercises the same index
// math and the same arithmetic as the kernel; only the warp-collective glue (ldmatrix, mma.sync,
// quad shuffles, cp.async, barriers) differs between the two.
//
// Notation: a warp owns kMTiles m16 tiles of query rows. lane = 0..31, g = lane / 4 ("groupID" in
// the PTX ISA), t = lane % 4 ("threadID_in_group"). Elements are bf16 in shared memory, f32 in the
// accumulators. Shapes in comments are [rows, cols].
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/cuda/hd.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#endif

namespace ds::cuda::flash {

// ---- tile traits -----------------------------------------------------------------------------

// Every compile-time constant of one kernel configuration, in one place. A block of kWarps warps
// takes kBlockM = kWarps · kMTiles · 16 queries of one head; warp w owns query rows
// [w · kRowsPerWarp, (w + 1) · kRowsPerWarp) of the tile as kMTiles m16 MMA row tiles. Each main
// loop step streams kBlockN keys through a ring of kStages K/V buffers. Q is read from shared
// memory once into registers (kQInRegs) or per k-step of S = Q·Kᵀ (frees registers for more rows
// per warp, which is what cuts shared-memory traffic: each K/V fragment a warp loads feeds
// kMTiles MMAs).
template <int kHeadDim_, int kWarps_, int kMTiles_, int kBlockN_, int kStages_, bool kQInRegs_>
struct Traits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarps = kWarps_;
  static constexpr int kMTiles = kMTiles_;             // m16 row tiles per warp
  static constexpr int kBlockN = kBlockN_;             // keys per main-loop step
  static constexpr int kStages = kStages_;             // K/V tiles in the ring: load tile j + kStages − 1 during j
  static constexpr int kGroupsInFlight = kStages - 2;  // cp.async groups a step may leave pending
  static constexpr bool kQInRegs = kQInRegs_;

  static constexpr int kRowsPerWarp = 16 * kMTiles;
  static constexpr int kBlockM = kWarps * kRowsPerWarp;  // queries per block
  static constexpr int kThreads = 32 * kWarps;

  static constexpr int kRowBytes = kHeadDim * 2;        // one bf16 row of Q, K or V in shared memory
  static constexpr int kChunksPerRow = kRowBytes / 16;  // 16-byte cp.async / ldmatrix units
  static constexpr int kQBytes = kBlockM * kRowBytes;
  static constexpr int kKVTileBytes = kBlockN * kRowBytes;  // one K or one V tile
  // Shared memory: Q tile, then the K ring, then the V ring.
  static constexpr int kKOffset = kQBytes;
  static constexpr int kVOffset = kKOffset + kStages * kKVTileBytes;
  static constexpr int kSmemBytes = kVOffset + kStages * kKVTileBytes;

  static constexpr int kQkSteps = kHeadDim / 16;  // k16 steps of S = Q·Kᵀ
  static constexpr int kSTiles = kBlockN / 8;     // n8 tiles of S per m16 row tile
  static constexpr int kPvSteps = kBlockN / 16;   // k16 steps of O += P·V
  static constexpr int kOTiles = kHeadDim / 8;    // n8 tiles of O per m16 row tile

  // 32-bit registers per thread that live through the main loop: O and S accumulators, plus the
  // Q fragments when kept. ptxas has min(255, 64K / threads) (launch bounds: one block per SM);
  // the rest of the kernel (K/V/Q fragments in flight, softmax state, addresses) needs ~40-60.
  static constexpr int kORegs = kMTiles * kOTiles * 4;
  static constexpr int kSRegs = kMTiles * kSTiles * 4;
  static constexpr int kQRegs = kQInRegs ? kMTiles * kQkSteps * 4 : 0;
  static constexpr int kFragmentRegs = kORegs + kSRegs + kQRegs;
  static constexpr int kMaxRegs = 65536 / kThreads < 255 ? 65536 / kThreads : 255;
  static constexpr int kRegHeadroom = 48;

  static_assert(kHeadDim == 32 || kHeadDim == 64 || kHeadDim == 128, "head dims 32, 64, 128");
  static_assert(kWarps >= 1 && kWarps <= 16 && kMTiles >= 1, "1-16 warps, at least one row tile each");
  static_assert(kStages >= 2, "at least double-buffered: the next tile loads while this one computes");
  static_assert(kHeadDim % 16 == 0 && kBlockN % 16 == 0, "MMA k-steps of 16");
  static_assert(kSTiles % 2 == 0 && kOTiles % 2 == 0, "ldmatrix.x4 loads two n8 tiles at a time");
  static_assert(kRowBytes % 16 == 0, "rows are whole 16-byte chunks");
  static_assert((kBlockM * kChunksPerRow) % kThreads == 0, "Q tile loads split evenly over threads");
  static_assert((kBlockN * kChunksPerRow) % kThreads == 0, "K/V tile loads split evenly");
  static_assert(kRowBytes >= 64, "the swizzle needs 8 consecutive rows to cover all 8 bank groups");
  static_assert(kKOffset % 256 == 0 && kKVTileBytes % 256 == 0, "tiles start at multiples of 256 bytes (BlockAddress)");
  static_assert(kSmemBytes <= 227 * 1024, "fits the opt-in shared memory of sm_80 and sm_90");
  static_assert(kFragmentRegs + kRegHeadroom <= kMaxRegs, "accumulators and fragments would spill");
};

// A compile-time list of configurations.
template <class... Ts>
struct TypeList {
  static constexpr int kSize = sizeof...(Ts);
};

// The configurations built for each head dim: every one is compiled, checked by the CPU emulation
// (tests/cuda/test_flash_layout.cpp) and the GPU tests, and timed by bench_cuda, so the choice of
// kDefault (what the backend runs unless CudaOptions::flash_config or DS_FLASH_CONFIG names
// another) is a measurement. Names read w<warps>x<row tiles per warp>_k<keys per step>_s<stages>_
// q<r: registers | s: shared memory> (ConfigName).
template <int kHeadDim>
struct Candidates;

template <>
struct Candidates<32> {
  using List = TypeList<Traits<32, 8, 1, 128, 2, true>>;
  static constexpr int kDefault = 0;
};

template <>
struct Candidates<64> {
  using List = TypeList<Traits<64, 8, 1, 128, 2, true>,   // 16 rows per warp, Q in registers
                        Traits<64, 4, 2, 64, 2, false>>;  // 32 rows per warp, Q from shared memory
  // H100, 2026-11-25 (bench/RESULTS.md): 235.6 vs 231.0 TFLOP/s at H=24 N=4608.
  static constexpr int kDefault = 1;
};

// hd 128. FlashAttention-2's sm_90 tile (128 × 64 keys, 4 warps × 32 rows, Q from shared memory)
// needs O (128) + S (64) accumulator registers; it spilled 40-48 bytes at 255 until the rescale of
// O became conditional (2026-11-26), so the 32-row warps first took 32 keys per step (FA2's sm_8x
// tile), with a three-deep ring to cover the shorter steps.
template <>
struct Candidates<128> {
  using List = TypeList<
      // The first design: each warp re-reads every K/V fragment for only 16 rows, bound by
      // shared-memory bandwidth (one ldmatrix.x4 per two MMAs). 96 KB, 1 block per SM.
      Traits<128, 8, 1, 64, 2, true>,
      // 4 warps × 32 rows: each K/V fragment feeds two MMAs. 80 KB, 128 threads × ≤ 255
      // registers: 2 blocks per SM.
      Traits<128, 4, 2, 32, 3, false>,
      // The same with a two-deep ring (64 KB): does the third stage pay?
      Traits<128, 4, 2, 32, 2, false>,
      // FlashAttention-2's sm_80/sm_90 tile: 64 keys per step halve the barriers and row
      // reductions per key. Fits 255 registers without spills since the rescale of O became
      // conditional (SoftmaxStep). 96 KB, 2 blocks per SM.
      Traits<128, 4, 2, 64, 2, false>,
      // 8 warps × 32 rows = 256 queries per block: half the K/V traffic from L2 per query of
      // the 4-warp tile, one block per SM (112 KB).
      Traits<128, 8, 2, 32, 3, false>>;
  // H200, 2026-11-26 (bench/RESULTS.md), TFLOP/s at N=32760 / N=4608 (SDPA flash 354.2 / 287.5):
  // w8x1 305.2 / 283.0, w4x2_k32_s3 336.8 / 300.8, w4x2_k32_s2 336.7 / 299.6,
  // w4x2_k64_s2 374.9 / 348.3, w8x2 312.1 / 251.5.
  static constexpr int kDefault = 3;
};

// The configuration at kIndex of a list; DefaultTraits<hd>: the default of a head dim.
template <int kIndex, class List>
struct ConfigAt;
template <int kIndex, class T, class... Ts>
struct ConfigAt<kIndex, TypeList<T, Ts...>> : ConfigAt<kIndex - 1, TypeList<Ts...>> {};
template <class T, class... Ts>
struct ConfigAt<0, TypeList<T, Ts...>> {
  using type = T;
};
template <int kHeadDim>
using DefaultTraits = typename ConfigAt<Candidates<kHeadDim>::kDefault, typename Candidates<kHeadDim>::List>::type;

// Calls f.template operator()<T>(index) for every configuration T of a list, in order.
template <class F, class... Ts>
void ForEachConfig(TypeList<Ts...>, F&& f) {
  int index = 0;
  (f.template operator()<Ts>(index++), ...);
}

// "w4x2_k32_s3_qs".
template <class T>
std::string ConfigName() {
  char name[64];
  std::snprintf(name, sizeof name, "w%dx%d_k%d_s%d_q%c", T::kWarps, T::kMTiles, T::kBlockN, T::kStages,
                T::kQInRegs ? 'r' : 's');
  return name;
}

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
// chunk. Consecutive threads take consecutive chunks of a row, so a warp reads whole rows; each
// iteration moves a thread kRowsPerIter rows down the same column, so the kernel walks one global
// pointer and one shared offset instead of holding an address per iteration.
struct Chunk {
  int row;
  int col;  // first element of the 8-element chunk
};

template <class T, int kRows>
struct TileCopy {
  static constexpr int kIters = kRows * T::kChunksPerRow / T::kThreads;
  static constexpr int kRowsPerIter = T::kThreads / T::kChunksPerRow;
  static_assert(T::kThreads % T::kChunksPerRow == 0, "every iteration covers whole rows");
  // A multiple of 16 rows keeps the swizzle key: SwizzledOffset(row + kRowsPerIter·it, col) ==
  // SwizzledOffset(row, col) + kRowsPerIter·it·kRowBytes.
  static_assert(kIters == 1 || kRowsPerIter % 16 == 0 || (T::kRowBytes >= 128 && kRowsPerIter % 8 == 0),
                "row steps keep the swizzle key");
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

DS_HD int Group(int lane) { return lane >> 2; }
DS_HD int InGroup(int lane) { return lane & 3; }

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

// ---- what each lane reads and writes ---------------------------------------------------------------

// The swizzle is linear in the steps the kernel takes. For a lane address in the first 16×16
// block of a tile (row < 16 past a multiple of 16, col < 16) and a tile that starts at a multiple
// of 256 bytes, the lane address in block (i, j), rows 16i …, cols 16j …, is
//   tile + SwizzledOffset(row + 16i, col + 16j) == ((tile + SwizzledOffset(row, col)) ^ 32j) + 16i·kRowBytes:
// 16i rows keep the row's swizzle key, and the 32j bytes of the column step touch only chunk
// bits the key's XOR commutes with. So the kernel keeps one base per operand (per step for K/V)
// and each ldmatrix costs one XOR plus an immediate offset, instead of a register per address.
template <class T>
DS_HD uint32_t LaneBase(uint32_t tile, int row, int col) {
  return tile + SwizzledOffset<T::kRowBytes>(row, col);
}
template <class T>
DS_HD uint32_t BlockAddress(uint32_t lane_base, int i, int j) {
  return (lane_base ^ (32u * static_cast<uint32_t>(j))) + static_cast<uint32_t>(i * 16 * T::kRowBytes);
}

// The lane bases of the three operands (qa, kb, vb: the lane's LdmatrixA/K/V).
// Q, A operand: block (mt, ks) = row tile mt of warp `warp`, dims 16·ks …
template <class T>
DS_HD uint32_t QLaneBase(uint32_t tile, RowCol qa, int warp) {
  return LaneBase<T>(tile, warp * T::kRowsPerWarp + qa.row, qa.col);
}
// K, B operands of S = Q·Kᵀ: block (nt2, ks) = keys 16·nt2 … (S tiles 2·nt2, 2·nt2 + 1), dims 16·ks …
template <class T>
DS_HD uint32_t KLaneBase(uint32_t tile, RowCol kb) {
  return LaneBase<T>(tile, kb.row, kb.col);
}
// V, B operands of O += P·V: block (kk, dt2) = keys 16·kk …, dims 16·dt2 … (O tiles 2·dt2, 2·dt2 + 1).
template <class T>
DS_HD uint32_t VLaneBase(uint32_t tile, RowCol vb) {
  return LaneBase<T>(tile, vb.row, vb.col);
}

// Row inside the query tile of accumulator elements 2h, 2h + 1 of row tile mt (FragC).
template <class T>
DS_HD int OutputRow(int warp, int mt, int lane, int h) {
  return warp * T::kRowsPerWarp + mt * 16 + Group(lane) + 8 * h;
}

// ---- the K/V pipeline ---------------------------------------------------------------------------------
//
// Key tile j lives in ring slot j % kStages. The prologue issues Q with tile 0 as one cp.async
// group and tiles 1 … kStages − 2 as one group each, waits for the first and syncs. Step j > 0
// then waits until at most kGroupsInFlight groups are pending (tile j has landed) and syncs the
// block: everyone's copies are visible, and every warp is done with step j − 1, whose slot tile
// j + kStages − 1 takes. Every step then issues that tile (an empty group past the last tile, so
// the count stays one group per step) and computes tile j.

// Byte offset of tile `tile`'s slot inside the K (or V) ring.
template <class T>
DS_HD uint32_t KVSlotOffset(int tile) {
  return static_cast<uint32_t>((tile % T::kStages) * T::kKVTileBytes);
}

template <class T>
DS_HD int PrefetchTile(int step) {
  return step + T::kStages - 1;
}

// ---- mma.sync.m16n8k16 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16") -----------------

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

// On the device one MUFU instruction, as FlashAttention gets from --use_fast_math: exp2f alone
// adds a range fix-up around it for subnormal results, which cost issue slots in the softmax (the
// kernel's second-busiest path after the MMAs); flushing them to zero changes nothing here, since
// P is rounded to bf16 and summed against a row maximum of 1.
DS_HD float Exp2(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return std::exp2(x);
#endif
}

// One FMNMX on the device (a > b ? a : b compiles to a compare and a select, two dependent
// instructions); the same value on the host for everything but NaN, which no max here sees
// unless the inputs held one (and then the output is NaN either way, through the sums).
DS_HD float Max(float a, float b) {
#if defined(__CUDA_ARCH__)
  return fmaxf(a, b);
#else
  return std::fmax(a, b);
#endif
}

// Independent accumulators of the per-lane row reductions (RowMax, ExpScores' sums): a lane's
// n8 tiles round-robin over them, so that consecutive max / add instructions do not wait for each
// other's results; a single chain of 32 dependent ones per row half (128 keys) was the longest
// path of the softmax, which must fit under the other warpgroup's GEMMs.
constexpr int kReduceChains = 4;
static_assert(kReduceChains == 4, "RowMax and ExpScores fold four chains");

struct SoftmaxState {
  float max[2] = {kNegInf, kNegInf};
  float sum[2] = {0.0f, 0.0f};
};

// Scores of keys ≥ nk (the zero-filled tail of the last key tile) become −inf.
template <class T>
DS_HD void MaskKeys(float (&s)[T::kSTiles][4], int lane, int key_begin, int nk) {
  DS_UNROLL
  for (int nt = 0; nt < T::kSTiles; ++nt) {
    DS_UNROLL
    for (int i = 0; i < 4; ++i) {
      if (key_begin + nt * 8 + FragC(lane, i).col >= nk) s[nt][i] = kNegInf;
    }
  }
}

// This lane's max of the raw scores of each row half; the caller reduces it over the quad.
template <class T>
DS_HD void RowMax(const float (&s)[T::kSTiles][4], float (&out)[2]) {
  float chain[kReduceChains][2];
  DS_UNROLL
  for (int c = 0; c < kReduceChains; ++c) chain[c][0] = chain[c][1] = kNegInf;
  DS_UNROLL
  for (int nt = 0; nt < T::kSTiles; ++nt) {
    DS_UNROLL
    for (int i = 0; i < 4; ++i) chain[nt % kReduceChains][i >> 1] = Max(chain[nt % kReduceChains][i >> 1], s[nt][i]);
  }
  DS_UNROLL
  for (int h = 0; h < 2; ++h) {
    out[h] = Max(Max(chain[0][h], chain[1][h]), Max(chain[2][h], chain[3][h]));
  }
}

// Factor that moves a sum taken against `old_max` onto `new_max` (both in log2 units): exactly 1
// when the max did not move (so skipping the multiplication by it changes no bit).
DS_HD float Rescale(float old_max, float new_max) {
  if (old_max == new_max) return 1.0f;
  return old_max == kNegInf ? 0.0f : Exp2(old_max - new_max);
}

// Whether any lane of the warp needs its O rows rescaled; one lane's own answer off the device,
// where the emulation runs lanes one at a time (skipping a factor of exactly 1 is exact either way).
DS_HD bool AnyLane(bool v) {
#if defined(__CUDA_ARCH__)
  return __any_sync(0xffffffffu, v);
#else
  return v;
#endif
}

// One key tile, in three parts. MoveMax: given the quad-reduced raw row maxima of the tile, move
// the running max and the partial sums to the new max; `alpha` is the factor that O, accumulated
// against the old max, must be multiplied by (RescaleO), `ref` the max the scores are taken against.
DS_HD void MoveMax(SoftmaxState& st, const float (&tile_max)[2], float scale_log2, float (&alpha)[2], float (&ref)[2]) {
  DS_UNROLL
  for (int h = 0; h < 2; ++h) {
    const float new_max = Max(st.max[h], tile_max[h] * scale_log2);
    // Only −inf while every key seen so far is masked (never after a valid one): subtract 0 then.
    ref[h] = new_max == kNegInf ? 0.0f : new_max;
    alpha[h] = Rescale(st.max[h], ref[h]);
    st.max[h] = new_max;
    st.sum[h] *= alpha[h];
  }
}

// O *= alpha per row half. A row's max stops moving after the first few tiles, so the warp skips
// the multiplies (64 per row tile for hd 128, as many as its softmax) whenever none of its rows'
// maxima moved: at N = 32 760 that is ~85 % of the tiles, and a factor of exactly 1 makes the skip
// bit-exact.
template <class T>
DS_HD void RescaleO(float (&o)[T::kOTiles][4], const float (&alpha)[2]) {
  if (AnyLane(alpha[0] != 1.0f || alpha[1] != 1.0f)) {
    DS_UNROLL
    for (int dt = 0; dt < T::kOTiles; ++dt) {
      DS_UNROLL
      for (int i = 0; i < 4; ++i) o[dt][i] *= alpha[i >> 1];
    }
  }
}

// The scores become p = exp2(score·scale_log2 − ref) in place, summed into the partial sums.
// The tile's sum is taken in kReduceChains partial sums (the n8 tiles round-robin), added to the
// running sum at the end.
template <class T>
DS_HD void ExpScores(float (&s)[T::kSTiles][4], SoftmaxState& st, const float (&ref)[2], float scale_log2) {
  DS_UNROLL
  for (int h = 0; h < 2; ++h) {
    float chain[kReduceChains] = {};
    DS_UNROLL
    for (int nt = 0; nt < T::kSTiles; ++nt) {
      DS_UNROLL
      for (int i = 2 * h; i < 2 * h + 2; ++i) {
        s[nt][i] = Exp2(s[nt][i] * scale_log2 - ref[h]);
        chain[nt % kReduceChains] += s[nt][i];
      }
    }
    st.sum[h] += (chain[0] + chain[1]) + (chain[2] + chain[3]);
  }
}

// The step of a kernel whose O is complete when the tile's scores are: all three parts.
template <class T>
DS_HD void SoftmaxStep(float (&s)[T::kSTiles][4], float (&o)[T::kOTiles][4], SoftmaxState& st,
                       const float (&tile_max)[2], float scale_log2) {
  float alpha[2], ref[2];
  MoveMax(st, tile_max, scale_log2, alpha, ref);
  RescaleO<T>(o, alpha);
  ExpScores<T>(s, st, ref, scale_log2);
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
// (so they can be slices of one fused qkv buffer); o: f32, or bf16 where o_bf16, with its own
// element strides.
struct Params {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  bool o_bf16 = false;
  int64_t q_row = 0, q_head = 0;
  int64_t k_row = 0, k_head = 0;
  int64_t v_row = 0, v_head = 0;
  int64_t o_row = 0, o_head = 0;
  int nq = 0, nk = 0, heads = 0;
  float scale_log2 = 0.0f;  // softmax scale · log2(e): scores go through exp2
  // Device scratch of ScratchBytes() for the wgmma configurations, which first write Vᵀ there
  // (bf16 [heads, head_dim, nk rounded up to 8]); unused by the others.
  void* v_t = nullptr;
};

constexpr float kLog2e = 1.4426950408889634f;

#if defined(__CUDACC__)
// The output: f32, or for kernels instantiated for p.o_bf16, bf16 (rounded to nearest even). A
// template argument, not a branch, so the f32 kernels stay the code that was measured.
template <bool kBf16>
using OutputElement = std::conditional_t<kBf16, __nv_bfloat16, float>;

// Head `head`'s output row 0.
template <bool kBf16>
__device__ __forceinline__ OutputElement<kBf16>* OutputBase(const Params& p, int head) {
  return static_cast<OutputElement<kBf16>*>(p.o) + head * p.o_head;
}

// Two adjacent outputs at `o` (an even column): one 8-byte f32 or 4-byte bf16 store.
__device__ __forceinline__ void StorePair(float* o, float a, float b) {
  *reinterpret_cast<float2*>(o) = make_float2(a, b);
}
__device__ __forceinline__ void StorePair(__nv_bfloat16* o, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(o) = __floats2bfloat162_rn(a, b);
}
#endif

}  // namespace ds::cuda::flash
