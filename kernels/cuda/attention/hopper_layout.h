// The index layer of the Hopper flash attention kernel (flash_hopper.cu, sm_90a): tile traits,
// the shared-memory layout wgmma reads its operands in, the 64-bit shared-memory matrix
// descriptors that point wgmma at them, and the warpgroup accumulator fragment. Shared by the
// device code and the CPU emulation in tests/cuda/test_hopper_layout.cpp, which decodes the
// descriptors as the PTX ISA describes them ("Matrix Descriptor Format", "Shared Memory Matrix
// Layout") without a GPU.
//
// The kernel's block has kWarpGroups (consumer) warpgroups of 4 warps, plus, in the TMA-fed kernel,
// a producer warpgroup that only copies (TmaRing below); consumer w owns query rows
// [64w, 64w + 64) of the block's tile and runs, per key tile of kBlockN keys,
//   S = Q·Kᵀ   as kHeadDim/16 wgmma.m64n<kBlockN>k16, A (Q) and B (K) from shared memory,
//   O += P·V   as kBlockN/16 wgmma.m64n<kHeadDim>k16, A (P) from registers, B (Vᵀ) from shared memory.
// Q and K are "K-major" operands (their reduction dimension contiguous) as stored, [token, dim].
// V is either transposed beforehand into Vᵀ [dim, key] (TransposeV in flash_hopper.cu), so that
// one layout, the 128-byte swizzle below, serves all three, or (Traits::kVMnMajor) read as
// stored, [key, dim], laid out as K, through an MN-major descriptor (MnMajorDescriptor).
//
// The accumulator of a warpgroup's m64nN is, warp by warp, the mma.m16n8k16 C fragment repeated
// over n8 tiles (warp w of the group holds rows 16w …), and its A fragment from registers is the
// m16n8k16 A fragment: so the online softmax of flash_layout.h (MaskKeys, RowMax, SoftmaxStep,
// PackP: P never leaves registers) runs unchanged on a thread's float[kSTiles][4].
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "kernels/cuda/attention/flash_layout.h"
#include "kernels/cuda/hd.h"

namespace ds::cuda::flash::hopper {

// ---- tile traits -----------------------------------------------------------------------------

// kOverlap: FlashAttention-3's intra-warpgroup pipelining (each step enqueues S of its tile and
// P·V of the previous one, and runs the softmax while that P·V runs), which keeps V of the
// previous tile resident: three K/Vᵀ slots instead of two when every thread loads (cp.async).
// kProducer: FlashAttention-3's warp specialisation: one more warpgroup, whose one thread streams
// Q, K and Vᵀ by the tensor memory accelerator (TMA) into the ring, each slot's arrival and
// release tracked by mbarriers (TmaRing below), so that the kWarpGroups consumer warpgroups are
// not tied to each other by a block barrier per step and take turns on the tensor cores (one's
// softmax under the other's GEMMs). It implies kOverlap; its K and Vᵀ slots are released
// separately (K once S has landed, Vᵀ once P·V has), so kStages = 2 already keeps the next tiles
// in flight.
// kKAhead (with a producer): FlashAttention-3's copy order, K of the next tile ahead of Vᵀ of this
// one (TmaRing::ProducerCopy), so that each copy pairs the two tiles one consumer step reads
// together (S(j + 1) with P·V(j)) and K's refill never queues behind a Vᵀ slot's release.
// kVMnMajor (with a producer): V is read as stored, no transposing pass: the TMA lands V tiles
// [kBlockN keys, hd] exactly as K tiles, and P·V's wgmmas read them as an MN-major B operand
// (imm-trans-b, which 16-bit types allow; MnMajorDescriptor), as FlashAttention-3 does for bf16.
// The ring's "Vt" slots then hold V. Saves the pass over V (a read and a write of it) per call.
template <int kHeadDim_, int kWarpGroups_, int kBlockN_, bool kOverlap_, bool kProducer_ = false,
          int kStages_ = (kOverlap_ && !kProducer_) ? 3 : 2, bool kKAhead_ = false, bool kVMnMajor_ = false>
struct Traits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarpGroups = kWarpGroups_;  // consumer warpgroups: 64 query rows each
  static constexpr int kBlockN = kBlockN_;          // keys per main-loop step
  static constexpr bool kOverlap = kOverlap_ || kProducer_;
  static constexpr bool kProducer = kProducer_;
  // K/Vᵀ tiles in the ring: tile j + 1 loads while tile j computes (and, overlapped, tile j − 1's
  // P·V runs).
  static constexpr int kStages = kStages_;
  static constexpr bool kKAhead = kKAhead_;
  static constexpr bool kVMnMajor = kVMnMajor_;

  static constexpr int kThreads = 128 * (kWarpGroups + (kProducer ? 1 : 0));
  static constexpr int kBlockM = 64 * kWarpGroups;  // queries per block

  // For the softmax helpers of flash_layout.h: a thread's S is float[kSTiles][4], its O
  // float[kOTiles][4] (n8 tiles of the m64 accumulators).
  static constexpr int kSTiles = kBlockN / 8;
  static constexpr int kOTiles = kHeadDim / 8;
  static constexpr int kQkSteps = kHeadDim / 16;  // k16 steps of S = Q·Kᵀ
  static constexpr int kPvSteps = kBlockN / 16;   // k16 steps of O += P·V

  // Shared memory: Q [kBlockM, hd], then K [kStages][kBlockN, hd], then Vᵀ [kStages][hd, kVtCols],
  // each a swizzled K-major tile (Sw128Offset); with kVMnMajor, V [kStages][kBlockN, hd] laid out
  // as K. A Vᵀ tile is whole 64-key swizzle atoms: with a key tile of 176 the last 16 columns are
  // padding (the TMA fills them with the next keys; no P·V step reads them). kSmemAlloc adds room
  // to align the base to the swizzle's 1024-byte period, which the descriptors' base offset of 0
  // assumes.
  static constexpr int kVtCols = (kBlockN + 63) / 64 * 64;
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kKBytes = kBlockN * kHeadDim * 2;
  static constexpr int kVtBytes = kVMnMajor ? kKBytes : kHeadDim * kVtCols * 2;
  static constexpr int kKOffset = kQBytes;
  static constexpr int kVtOffset = kKOffset + kStages * kKBytes;
  // Then, with a producer, the mbarriers (TmaRing): 8 bytes each.
  static constexpr int kBarrierOffset = kVtOffset + kStages * kVtBytes;
  static constexpr int kBarriers = kProducer ? 1 + 4 * kStages : 0;
  static constexpr int kSmemBytes = kBarrierOffset + 8 * kBarriers;
  static constexpr int kSmemAlloc = kSmemBytes + 1024;

  // Registers a thread holds through a step: S and O accumulators and P's A fragments (kept until
  // the P·V wgmma that reads them completes; overlapped, through the next tile's softmax), under
  // 255 with room for addresses and softmax state.
  static constexpr int kFragmentRegs = kSTiles * 4 + kOTiles * 4 + kPvSteps * 4;
  static constexpr int kRegHeadroom = 40;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "head dims 64, 128 (rows of whole 128-byte swizzle atoms)");
  static_assert(kWarpGroups == 1 || kWarpGroups == 2 || kWarpGroups == 3, "1-3 warpgroups of 64 query rows");
  static_assert(kBlockN % 16 == 0 && kBlockN <= 256, "whole k16 steps of P·V; wgmma N ≤ 256");
  static_assert(kProducer || kBlockN % 64 == 0, "the cp.async copies fill whole Vᵀ atoms (TileCopy)");
  static_assert(kHeadDim % 8 == 0 && kHeadDim <= 256, "wgmma N of P·V");
  static_assert(kQBytes % 1024 == 0 && kKBytes % 1024 == 0 && kVtBytes % 1024 == 0,
                "every tile starts on the swizzle period");
  static_assert(kSmemAlloc <= 227 * 1024, "fits sm_90's opt-in shared memory");
  static_assert(!kProducer || (kWarpGroups == 2 && kStages >= 2),
                "the consumers take turns in pairs (named barriers); a slot per tile in flight");
  static_assert(kProducer || !kKAhead, "the copy order is the producer's");
  static_assert(kProducer || !kVMnMajor, "the cp.async copies (TileCopy) fill Vᵀ tiles");
  static_assert(kStages >= (kOverlap && !kProducer ? 3 : 2), "a block-barrier ring keeps V(j − 1), K(j), K/V(j + 1)");
  static_assert(kFragmentRegs + kRegHeadroom <= 255, "accumulators and P would spill");
};

template <class T>
std::string HopperConfigName() {
  char name[64];
  std::snprintf(name, sizeof name, "wgmma%d_k%d_s%d%s%s", T::kWarpGroups, T::kBlockN, T::kStages,
                T::kKAhead     ? "_tma_ka"
                : T::kProducer ? "_tma"
                : T::kOverlap  ? "_ov"
                               : "",
                T::kVMnMajor ? "_vmn" : "");
  return name;
}

// The configurations built (all on sm_90a only; tested by the emulation and the GPU tests, timed by
// bench_cuda, offered through CudaOptions::flash_config / DS_FLASH_CONFIG like the mma.sync ones).
template <int kHeadDim>
struct Candidates {
  using List = TypeList<>;
  static constexpr int kDefault = -1;  // none: the mma.sync default runs on sm_90 too
};
template <>
struct Candidates<128> {
  using List = TypeList<
      // Two warpgroups × 64 queries, 128 keys per step: 160 KB, one block of 8 warps per SM;
      // one warpgroup's softmax runs while the other's GEMMs hold the tensor cores.
      Traits<128, 2, 128, false>,
      // The same with each warpgroup's softmax also under its own previous P·V: 224 KB.
      Traits<128, 2, 128, true>,
      // The pipelined one fed by a TMA producer warpgroup, the two consumers taking turns on the
      // tensor cores: 384 threads; two (160 KB) or three (224 KB) K and Vᵀ slots.
      Traits<128, 2, 128, true, true, 2>, Traits<128, 2, 128, true, true, 3>,
      // FlashAttention-3's key tile for non-causal hd 128: 176 keys, so 27 % fewer steps (row
      // reductions, rescales, turn hand-overs) per key; S in 88 registers (m64n176k16; 192 keys
      // spill at the consumers' 240), 216 KB. Not yet measured.
      Traits<128, 2, 176, true, true, 2>,
      // Both with FlashAttention-3's producer order, K(j + 1) before Vᵀ(j). Not yet measured.
      Traits<128, 2, 128, true, true, 2, true>, Traits<128, 2, 176, true, true, 2, true>,
      // The 128- and 176-key TMA kernels reading V as stored (MN-major B), without the transposing
      // pass; 176 keys then take 208 KB. Not yet measured.
      Traits<128, 2, 128, true, true, 2, false, true>, Traits<128, 2, 176, true, true, 2, false, true>>;
  // The default on sm_90 (flash::DefaultConfig), H100 2026-11-26 (bench/RESULTS.md), TFLOP/s at
  // N=32760 / N=4608 in one run: wgmma2_k128_s2 363.4 / 362.9, wgmma2_k128_s3_ov 369.9 / 390.8,
  // wgmma2_k128_s2_tma 538.9 / 543.8, wgmma2_k128_s3_tma 515.7 / 540.7; the best mma.sync tile
  // (w4x2_k64_s2_qs) 310.3 / 353.4. SDPA on that card: flash 309.5 / 257.0, cuDNN 490.8 / 567.6.
  static constexpr int kDefault = 2;
  static constexpr int kCpAsyncDefault = 1;  // wgmma2_k128_s3_ov: with DS_FLASH_NO_WGMMA=tma
};

// ---- which tiles a block handles --------------------------------------------------------------

// QueryTile, KeyTileCount and KeyTile are flash_layout.h's: they read only kBlockM and kBlockN.

// Row stride (elements) of Vᵀ [dim, key]: keys rounded up to whole 16-byte chunks, the padding zero.
DS_HD int64_t VtRow(int nk) { return (static_cast<int64_t>(nk) + 7) / 8 * 8; }

// ---- the 128-byte-swizzled K-major tile -----------------------------------------------------------
//
// A tile of `rows` rows × `cols` bf16 (cols a multiple of 64) is stored as cols/64 "atoms" one
// after another, each rows × 128 bytes (64 elements of each row); in an atom, row r's 16-byte
// chunk c sits at chunk position c ^ (r mod 8). That is wgmma's canonical K-major layout with
// 128-byte swizzling: 8-row groups of 1024 bytes (the descriptor's stride byte offset), whose
// chunk bits (4-6 of the address) the hardware XORs with the row bits (7-9).

constexpr uint32_t kSwizzleRowBytes = 128;
constexpr uint32_t kGroupBytes = 8 * kSwizzleRowBytes;  // stride byte offset: next 8 rows

DS_HD uint32_t Sw128Offset(int rows, int row, int col) {
  const uint32_t atom = static_cast<uint32_t>(col >> 6), chunk = static_cast<uint32_t>((col >> 3) & 7);
  return atom * static_cast<uint32_t>(rows) * kSwizzleRowBytes + static_cast<uint32_t>(row) * kSwizzleRowBytes +
         ((chunk ^ (static_cast<uint32_t>(row) & 7u)) << 4) + static_cast<uint32_t>(col & 7) * 2u;
}

// The operand of one wgmma k16 step: rows [row0, row0 + M or N) of a tile at `tile` (a multiple of
// 1024), columns [16·step, 16·step + 16). Its start address is the unswizzled address of element
// (row0, 16·step): within an atom the hardware applies the XOR to each address it forms, so a k16
// step moves the start 32 bytes along the 128-byte row (row0 a multiple of 8 keeps the XOR key 0).
DS_HD uint32_t OperandStart(uint32_t tile, int rows, int row0, int step) {
  const int col = 16 * step;
  return tile + static_cast<uint32_t>(col >> 6) * static_cast<uint32_t>(rows) * kSwizzleRowBytes +
         static_cast<uint32_t>(row0) * kSwizzleRowBytes + static_cast<uint32_t>(col & 63) * 2u;
}

// Shared-memory matrix descriptor (PTX ISA, wgmma "Matrix Descriptor Format"): bits 0-13 start
// address >> 4, 16-29 leading byte offset >> 4 (not used by swizzled K-major layouts; 1), 32-45
// stride byte offset >> 4, 49-51 base offset (0: atoms on the 1024-byte period), 62-63 swizzle
// mode (1 = 128-byte).
DS_HD uint64_t Descriptor(uint32_t start) {
  return static_cast<uint64_t>((start >> 4) & 0x3fffu) | (uint64_t{1} << 16) | (uint64_t{kGroupBytes >> 4} << 32) |
         (uint64_t{1} << 62);
}

// The descriptor of an MN-major operand with 128-byte swizzling (B of P·V read from V as stored,
// with the instruction's imm-trans-b; PTX ISA "Shared Memory Matrix Layout", and CUTLASS's
// canonical GMMA MN-major layout ((64 elements, n), (8, k)) : ((1, LBO), (128 bytes, SBO))): each
// 128-byte row holds 64 consecutive N elements of one k, rows for consecutive k follow in 8-row
// groups `kGroupBytes` apart (stride byte offset), and the next 64 N elements start `atom_bytes`
// further on (leading byte offset). V's tile [keys, hd] as the TMA lands it (Sw128Offset with
// rows = keys) is that layout with atom_bytes = keys · 128.
DS_HD uint64_t MnMajorDescriptor(uint32_t start, uint32_t atom_bytes) {
  return static_cast<uint64_t>((start >> 4) & 0x3fffu) | (static_cast<uint64_t>((atom_bytes >> 4) & 0x3fffu) << 16) |
         (uint64_t{kGroupBytes >> 4} << 32) | (uint64_t{1} << 62);
}

// The descriptor of base + offset from the descriptor of a base on the 1024-byte period: the start
// address field is the only one that changes, and it stays inside its 14 bits for any address in
// shared memory (< 2¹⁸ bytes), so this is one 64-bit add of an immediate.
DS_HD uint64_t DescriptorAt(uint64_t base_descriptor, uint32_t offset) { return base_descriptor + (offset >> 4); }

// ---- global → shared copies ---------------------------------------------------------------------

// Iteration `it` of thread `tid` copies 16-byte chunk `col / 8` of row `row` of a [kRows, kCols]
// tile: consecutive threads take consecutive chunks of a row (whole rows per warp from global),
// and each iteration moves a thread kRowsPerIter rows down the same column. A multiple of 8 rows
// keeps the swizzle key, so the kernel walks one global pointer and one shared offset:
// Sw128Offset(row + kRowsPerIter·it, col) == Sw128Offset(row, col) + kRowsPerIter·it·128.
template <class T, int kRows, int kCols>
struct TileCopy {
  static constexpr int kChunksPerRow = kCols / 8;
  static constexpr int kIters = kRows * kChunksPerRow / T::kThreads;
  static constexpr int kRowsPerIter = T::kThreads / kChunksPerRow;
  static_assert((kRows * kChunksPerRow) % T::kThreads == 0, "tile loads split evenly over threads");
  static_assert(T::kThreads % kChunksPerRow == 0 && kRowsPerIter % 8 == 0, "row steps keep the swizzle key");
  DS_HD static Chunk At(int tid, int it) {
    const int idx = it * T::kThreads + tid;
    return {idx / kChunksPerRow, (idx % kChunksPerRow) * 8};
  }
};

// K/Vᵀ tile j lives in ring slot j % kStages.
template <class T>
DS_HD uint32_t KSlot(int tile) {
  return static_cast<uint32_t>(T::kKOffset + (tile % T::kStages) * T::kKBytes);
}
template <class T>
DS_HD uint32_t VtSlot(int tile) {
  return static_cast<uint32_t>(T::kVtOffset + (tile % T::kStages) * T::kVtBytes);
}

// ---- the warpgroup's operands and accumulators ------------------------------------------------------

// Thread `t` (0-127) of a warpgroup: accumulator element i (0-3) of n8 tile nt of an m64nN (and,
// with the same row, the A fragment's elements): row 16·(t / 32) + FragC row, column 8·nt + FragC col.
DS_HD RowCol Accumulator(int t, int nt, int i) {
  const RowCol c = FragC(t % 32, i);
  return {16 * (t / 32) + c.row, 8 * nt + c.col};
}

// Row inside the block's query tile of accumulator elements 2h, 2h + 1 of consumer thread tid
// (0 … 128·kWarpGroups − 1; with a producer, the block's thread tid + 128), any n8 tile.
template <class T>
DS_HD int OutputRow(int tid, int h) {
  return 64 * (tid / 128) + Accumulator(tid % 128, 0, 2 * h).row;
}

// Descriptors of k16 step `step` of warpgroup `wg`'s GEMMs, relative to the aligned shared base.
template <class T>
DS_HD uint32_t QOperand(int wg, int step) {
  return OperandStart(0, T::kBlockM, 64 * wg, step);
}
template <class T>
DS_HD uint32_t KOperand(int tile, int step) {
  return OperandStart(KSlot<T>(tile), T::kBlockN, 0, step);
}
// P·V's B of k16 step `step` (keys 16·step …): Vᵀ's rows from column 16·step, or, with
// kVMnMajor, V's rows 16·step … (whole 8-row groups: the swizzle key stays the row's).
template <class T>
DS_HD uint32_t VtOperand(int tile, int step) {
  if constexpr (T::kVMnMajor) {
    return VtSlot<T>(tile) + static_cast<uint32_t>(16 * step) * kSwizzleRowBytes;
  } else {
    return OperandStart(VtSlot<T>(tile), T::kHeadDim, 0, step);
  }
}
// Its descriptor, from the K-major descriptor of the aligned base: DescriptorAt, and with
// kVMnMajor the leading byte offset field moved from 1 to V's atom stride (kBlockN rows of 128
// bytes), one more add of an immediate.
template <class T>
DS_HD uint64_t VtDescriptorAt(uint64_t base_descriptor, uint32_t offset) {
  const uint64_t d = DescriptorAt(base_descriptor, offset);
  if constexpr (T::kVMnMajor) {
    constexpr uint64_t kAtomField = static_cast<uint64_t>(T::kBlockN) * kSwizzleRowBytes >> 4;
    static_assert(kAtomField < (1u << 14), "the leading byte offset field holds V's atom stride");
    return d + ((kAtomField - 1) << 16);
  } else {
    return d;
  }
}

// ---- the TMA ring of the warp-specialised kernel (Traits::kProducer) ----------------------------
//
// mbarriers, at Traits::kBarrierOffset: one for Q, then per slot s of the K ring and of the Vᵀ
// ring a "full" barrier (the producer's arrive with the byte count, completed by the TMA's bytes)
// and an "empty" one (one arrive per consumer warp once its wgmmas reading the slot are done).
// Tile j uses slot j % kStages in round j / kStages; an mbarrier's phases alternate parity 0, 1, …,
// so the consumers wait for parity round & 1 of "full", and the producer, before the refill of
// round r ≥ 1, for the release that ended round r − 1: parity (r − 1) & 1 of "empty".
template <class T>
struct TmaRing {
  static constexpr int kQFull = 0;
  DS_HD static int FullK(int slot) { return 1 + slot; }
  DS_HD static int EmptyK(int slot) { return 1 + T::kStages + slot; }
  DS_HD static int FullVt(int slot) { return 1 + 2 * T::kStages + slot; }
  DS_HD static int EmptyVt(int slot) { return 1 + 3 * T::kStages + slot; }
  DS_HD static uint32_t Barrier(int index) { return static_cast<uint32_t>(T::kBarrierOffset + 8 * index); }

  DS_HD static int Slot(int tile) { return tile % T::kStages; }
  DS_HD static uint32_t FullParity(int tile) { return static_cast<uint32_t>(tile / T::kStages) & 1u; }
  DS_HD static bool RefillWaits(int tile) { return tile >= T::kStages; }
  DS_HD static uint32_t EmptyParity(int tile) { return static_cast<uint32_t>(tile / T::kStages - 1) & 1u; }

  static constexpr int kConsumerWarps = 4 * T::kWarpGroups;  // arrivals that empty a slot

  // The producer's i-th copy of a call's 2 · n_tiles (after Q): a K or a Vᵀ tile. In order, K(j)
  // then Vᵀ(j); with kKAhead, K(0), then K(j + 1) before Vᵀ(j), then the last Vᵀ. Consumer step j
  // reads K(j) and Vᵀ(j − 1), so the K-ahead order issues each such pair back to back.
  struct Copy {
    bool vt;
    int tile;
  };
  DS_HD static Copy ProducerCopy(int i, int n_tiles) {
    if (!T::kKAhead) return {(i & 1) != 0, i >> 1};
    if (i == 0) return {false, 0};
    if (i == 2 * n_tiles - 1) return {true, n_tiles - 1};
    return (i & 1) != 0 ? Copy{false, (i + 1) >> 1} : Copy{true, (i >> 1) - 1};
  }
};

// A tensor the TMA reads, as cuTensorMapEncodeTiled takes it (rank 3, bf16): dims[0] contiguous,
// byte strides of dims 1 and 2, and the box one copy moves: 64 elements (one 128-byte swizzle row)
// × `rows` rows. A tile [rows, 64·a] is `a` such boxes, each landing as one swizzle atom of
// Sw128Offset (the TMA's 128-byte swizzle is that layout on a 1024-byte-aligned destination).
struct TmaTensor {
  uint64_t dims[3];
  uint64_t strides[2];
  uint32_t box[3];
  bool heads_inner;  // token tensors: dims {dim, heads, tokens} (else {dim, tokens, heads})
};

// q or k [tokens, heads, head_dim] at element strides `row` (token) and `head`, with the heads
// inside the tokens (dims {dim, heads, tokens}) or outside them.
inline TmaTensor TokenTensorOrdered(int64_t tokens, int heads, int head_dim, int64_t row, int64_t head, int box_rows,
                                    bool inner) {
  TmaTensor t{};
  t.heads_inner = inner;
  t.dims[0] = static_cast<uint64_t>(head_dim);
  t.dims[1] = static_cast<uint64_t>(inner ? heads : tokens);
  t.dims[2] = static_cast<uint64_t>(inner ? tokens : heads);
  t.strides[0] = static_cast<uint64_t>((inner ? head : row) * 2);
  t.strides[1] = static_cast<uint64_t>((inner ? row : head) * 2);
  t.box[0] = 64;
  t.box[1] = inner ? 1u : static_cast<uint32_t>(box_rows);
  t.box[2] = inner ? static_cast<uint32_t>(box_rows) : 1u;
  return t;
}

inline bool TmaEncodable(const TmaTensor& t);

// The token tensor in the order the TMA can walk: the strides growing ([N, H, dh] rows: heads
// inside tokens), else the other order (a dimension of extent 1 makes either stride fit, so both
// are tried); neither encodable: the first, which TmaEncodable refuses.
inline TmaTensor TokenTensor(int64_t tokens, int heads, int head_dim, int64_t row, int64_t head, int box_rows) {
  const bool inner = head <= row;
  const TmaTensor first = TokenTensorOrdered(tokens, heads, head_dim, row, head, box_rows, inner);
  if (TmaEncodable(first)) return first;
  const TmaTensor second = TokenTensorOrdered(tokens, heads, head_dim, row, head, box_rows, !inner);
  return TmaEncodable(second) ? second : first;
}

// Vᵀ [heads, head_dim, vt_row] (TransposeV's scratch): boxes of 64 keys × head_dim rows.
inline TmaTensor VtTensor(int64_t vt_row, int heads, int head_dim) {
  TmaTensor t{};
  t.dims[0] = static_cast<uint64_t>(vt_row);
  t.dims[1] = static_cast<uint64_t>(head_dim);
  t.dims[2] = static_cast<uint64_t>(heads);
  t.strides[0] = static_cast<uint64_t>(vt_row * 2);
  t.strides[1] = static_cast<uint64_t>(head_dim * vt_row * 2);
  t.box[0] = 64;
  t.box[1] = static_cast<uint32_t>(head_dim);
  t.box[2] = 1;
  return t;
}

// What cuTensorMapEncodeTiled requires of a tensor that TokenTensor / VtTensor can break: byte
// strides multiples of 16 below 2⁴⁰, each at least the extent of the dimensions inside it.
inline bool TmaEncodable(const TmaTensor& t) {
  const uint64_t limit = uint64_t{1} << 40;
  return t.strides[0] % 16 == 0 && t.strides[1] % 16 == 0 && t.strides[0] < limit && t.strides[1] < limit &&
         t.strides[0] >= t.dims[0] * 2 && t.strides[1] >= t.strides[0] * t.dims[1] && t.dims[1] > 0 && t.dims[2] > 0 &&
         t.dims[1] <= (uint64_t{1} << 32) && t.dims[2] <= (uint64_t{1} << 32);
}

// The coordinates (dims[0], dims[1], dims[2] order) of the box at column `col`, token `token`,
// head `head` of a token tensor.
struct TmaCoords {
  int c0, c1, c2;
};
DS_HD TmaCoords TokenCoords(bool heads_inner, int col, int token, int head) {
  return heads_inner ? TmaCoords{col, head, token} : TmaCoords{col, token, head};
}

}  // namespace ds::cuda::flash::hopper
