// CPU checks of the Hopper (wgmma) flash attention kernel's index layer, hopper_layout.h (suite
// cuda-host; no GPU, no CUDA toolkit). Like test_flash_layout.cpp for the mma.sync kernel:
//  1. The maps against independent transcriptions of the PTX ISA: the shared-memory matrix
//     descriptor's fields, the 128-byte-swizzled K-major operand layout that a descriptor
//     addresses, and the warpgroup's accumulator and register-A fragments.
//  2. An emulation of whole thread blocks running the kernel's algorithm, warpgroup by warpgroup
//     and thread by thread: every wgmma reads its operands through the decoded descriptors, the
//     cp.async K/Vᵀ ring lands at issue or at the wait, the online softmax is flash_layout.h's;
//     compared with a float64 softmax(q·kᵀ·scale)·v.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kernels/cuda/attention/hopper_layout.h"
#include "tests/cuda/flash_emulation.h"

namespace ds::cuda::flash::hopper {
namespace {

using namespace emu;  // NOLINT: the shared emulation pieces

// ---- the hardware model: PTX ISA text, transcribed independently of hopper_layout.h ------------

// "Matrix Descriptor Format" of wgmma: start address, leading and stride byte offsets (all >> 4,
// 14 bits each at bits 0, 16, 32), base offset (bits 49-51), swizzle mode (bits 62-63).
struct DecodedDescriptor {
  uint32_t start, leading, stride, base_offset, swizzle;
};
DecodedDescriptor Decode(uint64_t d) {
  return {static_cast<uint32_t>(d & 0x3fff) << 4, static_cast<uint32_t>((d >> 16) & 0x3fff) << 4,
          static_cast<uint32_t>((d >> 32) & 0x3fff) << 4, static_cast<uint32_t>((d >> 49) & 7),
          static_cast<uint32_t>(d >> 62)};
}

// Byte address of element (row, k), k < 16, of a K-major operand with 128-byte swizzling ("Shared
// Memory Matrix Layout": rows of 128 bytes in 8-row groups `stride` bytes apart, 16-bit elements
// contiguous along K; the swizzle XORs address bits 4-6 with bits 7-9).
uint32_t OperandAddress(const DecodedDescriptor& d, int row, int k) {
  const uint32_t linear = d.start + static_cast<uint32_t>(row / 8) * d.stride + static_cast<uint32_t>(row % 8) * 128u +
                          static_cast<uint32_t>(k) * 2u;
  return linear ^ (((linear >> 7) & 7u) << 4);
}

// Byte address of element (n, k), k < 16, of an MN-major operand with 128-byte swizzling (B with
// imm-trans-b; "Shared Memory Matrix Layout", the canonical MN-major layout as CUTLASS spells it:
// ((64, n), (8, k)) elements at ((2 bytes, leading), (128 bytes, stride))): 128-byte rows of 64
// elements along N, one row per k, 8-row groups `stride` bytes apart, the next 64 N elements
// `leading` bytes on; the same swizzle.
// The PTX ISA reads the two offsets the same way ("Matrix Descriptor Format", its table of strides
// per layout): for MN-major swizzled layouts the leading dimension byte offset is the stride from
// the first (swizzle bytes / 16) rows of 16-byte elements to the next as many, with the 128-byte
// swizzle 8 × 16 bytes = the next 64 bf16 along N (V's atom stride, kBlockN · 128 bytes), and the
// stride byte offset the step to the next group of 8 rows along K (1024 bytes).
// MnMajorDescriptor was written from the same reading, so this emulation only checks that the
// kernel is consistent with itself: a misreading of LBO and SBO shared by both would pass here. The
// decisive check is on the GPU (MnMajorVReadsEveryKeyAndDim in test_cuda_attention.cpp).
uint32_t MnMajorOperandAddress(const DecodedDescriptor& d, int n, int k) {
  const uint32_t linear = d.start + static_cast<uint32_t>(n / 64) * d.leading +
                          static_cast<uint32_t>(k / 8) * d.stride + static_cast<uint32_t>(k % 8) * 128u +
                          static_cast<uint32_t>(n % 64) * 2u;
  return linear ^ (((linear >> 7) & 7u) << 4);
}

// "Register Fragments" of wgmma .m64nNk16, f32 accumulator D: thread t of the warpgroup holds
// N/2 values; value i is at row 16·(t / 32) + (t % 32) / 4 + 8·((i / 2) % 2), column
// 8·(i / 4) + 2·(t % 4) + i % 2.
RowCol PtxAccumulator(int t, int i) {
  const int lane = t % 32;
  return {16 * (t / 32) + lane / 4 + 8 * ((i / 2) % 2), 8 * (i / 4) + 2 * (lane % 4) + i % 2};
}
// A from registers, .bf16 m64k16: 8 values in 4 registers (value i in register i / 2, half i % 2),
// at row 16·(t / 32) + (t % 32) / 4 + 8·((i / 2) % 2), column 2·(t % 4) + i % 2 + 8·(i / 4).
RowCol PtxRegisterA(int t, int i) {
  const int lane = t % 32;
  return {16 * (t / 32) + lane / 4 + 8 * ((i / 2) % 2), 2 * (lane % 4) + i % 2 + 8 * (i / 4)};
}

// Per-thread accumulators of one warpgroup, as the kernel holds them: float[n8 tiles][4] per
// thread, flat value index 4·nt + i.
template <int kTiles>
struct Regs {
  float v[kTiles][4] = {};
};
template <int kTiles>
using Accumulators = std::vector<Regs<kTiles>>;

template <int kTiles>
float& Value(Accumulators<kTiles>& d, int t, int i) {
  return d[static_cast<size_t>(t)].v[i / 4][i % 4];
}

struct ARegs {
  uint32_t r[4];
};

// wgmma.mma_async m64nNk16 .f32.bf16.bf16 with B (and A when `a_regs` is null) from shared memory:
// D = A·Bᵀ (+ D when scale_d), A [64, 16] K-major, B [N, 16] K-major, or MN-major when
// `b_transposed` (imm-trans-b).
template <int kTiles>
void Wgmma(const Smem& smem, const ARegs* a_regs, uint64_t a_desc, uint64_t b_desc, bool scale_d,
           Accumulators<kTiles>& d, bool b_transposed = false) {
  constexpr int n = 8 * kTiles;
  double A[64][16], B[n][16];
  if (a_regs) {
    for (int t = 0; t < 128; ++t) {
      for (int i = 0; i < 8; ++i) {
        const RowCol rc = PtxRegisterA(t, i);
        A[rc.row][rc.col] = RegHalf(a_regs[t].r[i / 2], i % 2);
      }
    }
  } else {
    const DecodedDescriptor da = Decode(a_desc);
    EXPECT_EQ(da.swizzle, 1u);
    for (int m = 0; m < 64; ++m)
      for (int k = 0; k < 16; ++k) A[m][k] = Bf16ToFloat(LoadBf16(smem, OperandAddress(da, m, k)));
  }
  const DecodedDescriptor db = Decode(b_desc);
  EXPECT_EQ(db.swizzle, 1u);
  EXPECT_EQ(db.base_offset, 0u);
  for (int r = 0; r < n; ++r)
    for (int k = 0; k < 16; ++k) {
      const uint32_t at = b_transposed ? MnMajorOperandAddress(db, r, k) : OperandAddress(db, r, k);
      B[r][k] = Bf16ToFloat(LoadBf16(smem, at));
    }
  for (int t = 0; t < 128; ++t) {
    for (int i = 0; i < n / 2; ++i) {
      const RowCol rc = PtxAccumulator(t, i);
      double acc = scale_d ? Value<kTiles>(d, t, i) : 0.0;
      for (int k = 0; k < 16; ++k) acc += A[rc.row][k] * B[rc.col][k];
      Value<kTiles>(d, t, i) = static_cast<float>(acc);
    }
  }
}

template <class F>
void ForEveryConfig(F&& f) {
  ForEachConfig(Candidates<128>::List{}, [&]<class T>(int) {
    SCOPED_TRACE(HopperConfigName<T>());
    f.template operator()<T>();
  });
}

// ---- part 1: the maps ----------------------------------------------------------------------------

// The fields as encoded; what the MN-major offsets mean is MnMajorOperandAddress's reading above,
// which only the GPU test can confirm.
TEST(HopperLayout, DescriptorFieldsMatchThePtxIsa) {
  for (uint32_t start = 0; start < 227 * 1024; start += 16) {
    const DecodedDescriptor d = Decode(Descriptor(start));
    ASSERT_EQ(d.start, start);
    EXPECT_EQ(d.stride, 1024u);
    EXPECT_EQ(d.base_offset, 0u);
    EXPECT_EQ(d.swizzle, 1u);                           // 128-byte
    for (uint32_t atom : {128u * 128u, 176u * 128u}) {  // V tiles of 128 and 176 keys
      const DecodedDescriptor mn = Decode(MnMajorDescriptor(start, atom));
      ASSERT_EQ(mn.start, start);
      EXPECT_EQ(mn.leading, atom);
      EXPECT_EQ(mn.stride, 1024u);
      EXPECT_EQ(mn.base_offset, 0u);
      EXPECT_EQ(mn.swizzle, 1u);
    }
  }
}

TEST(HopperLayout, AccumulatorAndRegisterFragmentsMatchThePtxIsa) {
  for (int t = 0; t < 128; ++t) {
    for (int nt = 0; nt < 16; ++nt) {
      for (int i = 0; i < 4; ++i) {
        const RowCol ours = Accumulator(t, nt, i), ptx = PtxAccumulator(t, 4 * nt + i);
        EXPECT_EQ(ours.row, ptx.row);
        EXPECT_EQ(ours.col, ptx.col);
      }
    }
    // P as the A operand of k-step kk is S's n8 tiles 2kk and 2kk + 1, value for value (PackP).
    for (int i = 0; i < 8; ++i) {
      const RowCol a = PtxRegisterA(t, i), s = Accumulator(t, i / 4, i % 4);
      EXPECT_EQ(a.row, s.row);
      EXPECT_EQ(a.col, s.col);
    }
  }
}

template <class T>
void CheckSwizzledTileIsABijection(int rows, int cols) {
  std::set<uint32_t> seen;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const uint32_t at = Sw128Offset(rows, r, c);
      ASSERT_LT(at, static_cast<uint32_t>(rows * cols * 2));
      ASSERT_EQ(at % 2, 0u);
      seen.insert(at);
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(rows * cols));
}

TEST(HopperLayout, TilesAreBijectiveAndDisjoint) {
  ForEveryConfig([]<class T>() {
    CheckSwizzledTileIsABijection<T>(T::kBlockM, T::kHeadDim);
    CheckSwizzledTileIsABijection<T>(T::kBlockN, T::kHeadDim);
    if constexpr (T::kVMnMajor) {
      CheckSwizzledTileIsABijection<T>(T::kBlockN, T::kHeadDim);
    } else {
      CheckSwizzledTileIsABijection<T>(T::kHeadDim, T::kVtCols);
    }
    EXPECT_EQ(KSlot<T>(0), static_cast<uint32_t>(T::kQBytes));
    for (int slot = 0; slot < T::kStages; ++slot) {
      EXPECT_EQ(KSlot<T>(slot) % 1024, 0u);
      EXPECT_EQ(VtSlot<T>(slot) % 1024, 0u);
      EXPECT_EQ(KSlot<T>(slot), KSlot<T>(0) + static_cast<uint32_t>(slot * T::kKBytes));
      EXPECT_EQ(VtSlot<T>(slot), KSlot<T>(0) + static_cast<uint32_t>(T::kStages * T::kKBytes + slot * T::kVtBytes));
      EXPECT_EQ(KSlot<T>(slot + T::kStages), KSlot<T>(slot));  // a ring
      EXPECT_EQ(VtSlot<T>(slot + T::kStages), VtSlot<T>(slot));
    }
    EXPECT_EQ(VtSlot<T>(T::kStages - 1) + T::kVtBytes, static_cast<uint32_t>(T::kBarrierOffset));
    EXPECT_EQ(T::kBarrierOffset % 8, 0);
    EXPECT_EQ(T::kBarrierOffset + 8 * T::kBarriers, T::kSmemBytes);
    if constexpr (T::kProducer) {
      // The mbarriers: each its own 8 bytes inside the barrier area.
      using Ring = TmaRing<T>;
      std::set<uint32_t> at = {Ring::Barrier(Ring::kQFull)};
      for (int slot = 0; slot < T::kStages; ++slot) {
        for (int b : {Ring::FullK(slot), Ring::EmptyK(slot), Ring::FullVt(slot), Ring::EmptyVt(slot)}) {
          ASSERT_LT(b, T::kBarriers);
          at.insert(Ring::Barrier(b));
        }
      }
      EXPECT_EQ(at.size(), static_cast<size_t>(T::kBarriers));
    }
  });
}

// Every element every wgmma of the kernel reads, through its decoded descriptor, is the element the
// copies stored there: (query 64·wg + m, dim 16·step + k) of Q, (key n, dim …) of K, (dim n, key …) of Vᵀ,
// or, MN-major, (key 16·step + k, dim n) of V.
template <class T>
void CheckOperandsAddressTheirElements() {
  for (int wg = 0; wg < T::kWarpGroups; ++wg) {
    for (int step = 0; step < T::kQkSteps; ++step) {
      const DecodedDescriptor d = Decode(Descriptor(QOperand<T>(wg, step)));
      for (int m = 0; m < 64; ++m)
        for (int k = 0; k < 16; ++k)
          ASSERT_EQ(OperandAddress(d, m, k), Sw128Offset(T::kBlockM, 64 * wg + m, 16 * step + k)) << wg << " " << step;
    }
  }
  for (int tile = 0; tile < 2 * T::kStages; ++tile) {
    for (int step = 0; step < T::kQkSteps; ++step) {
      const DecodedDescriptor d = Decode(Descriptor(KOperand<T>(tile, step)));
      for (int n = 0; n < T::kBlockN; ++n)
        for (int k = 0; k < 16; ++k)
          ASSERT_EQ(OperandAddress(d, n, k), KSlot<T>(tile) + Sw128Offset(T::kBlockN, n, 16 * step + k));
    }
    for (int step = 0; step < T::kPvSteps; ++step) {
      const DecodedDescriptor d = Decode(VtDescriptorAt<T>(Descriptor(0), VtOperand<T>(tile, step)));
      for (int n = 0; n < T::kHeadDim; ++n)
        for (int k = 0; k < 16; ++k) {
          if constexpr (T::kVMnMajor) {
            ASSERT_EQ(MnMajorOperandAddress(d, n, k), VtSlot<T>(tile) + Sw128Offset(T::kBlockN, 16 * step + k, n));
          } else {
            ASSERT_EQ(OperandAddress(d, n, k), VtSlot<T>(tile) + Sw128Offset(T::kHeadDim, n, 16 * step + k));
          }
        }
    }
  }
}

TEST(HopperLayout, DescriptorsAddressTheStoredElements) {
  ForEveryConfig([]<class T>() { CheckOperandsAddressTheirElements<T>(); });
}

// The kernel forms each descriptor as an add to the descriptor of the aligned base (DescriptorAt).
TEST(HopperLayout, DescriptorOffsetsAreDescriptorsOfTheOffsetAddress) {
  ForEveryConfig([]<class T>() {
    // Bases a block's dynamic shared memory can have: with kSmemAlloc above, under the 2¹⁸ bytes
    // the start address field covers.
    for (uint32_t base : {0u, 1024u, 16u * 1024u}) {
      ASSERT_LT(base + T::kSmemAlloc, 1u << 18);
      for (int tile = 0; tile < T::kStages; ++tile) {
        for (int step = 0; step < T::kQkSteps; ++step) {
          for (int wg = 0; wg < T::kWarpGroups; ++wg) {
            EXPECT_EQ(DescriptorAt(Descriptor(base), QOperand<T>(wg, step)), Descriptor(base + QOperand<T>(wg, step)));
          }
          EXPECT_EQ(DescriptorAt(Descriptor(base), KOperand<T>(tile, step)),
                    Descriptor(base + KOperand<T>(tile, step)));
        }
        for (int step = 0; step < T::kPvSteps; ++step) {
          const uint32_t at = base + VtOperand<T>(tile, step);
          EXPECT_EQ(VtDescriptorAt<T>(Descriptor(base), VtOperand<T>(tile, step)),
                    T::kVMnMajor ? MnMajorDescriptor(at, T::kBlockN * 128) : Descriptor(at));
        }
      }
    }
  });
}

template <class T, int kRows, int kCols>
void CheckTileCopyCoversTile() {
  std::set<std::pair<int, int>> seen;
  for (int tid = 0; tid < T::kThreads; ++tid) {
    for (int it = 0; it < TileCopy<T, kRows, kCols>::kIters; ++it) {
      const Chunk c = TileCopy<T, kRows, kCols>::At(tid, it);
      ASSERT_LT(c.row, kRows);
      ASSERT_LT(c.col, kCols);
      ASSERT_EQ(c.col % 8, 0);
      seen.insert({c.row, c.col});
      // The kernel's walk (LoadTile): one pointer and one shared offset, kRowsPerIter rows a step.
      const Chunk first = TileCopy<T, kRows, kCols>::At(tid, 0);
      const int step = it * TileCopy<T, kRows, kCols>::kRowsPerIter;
      ASSERT_EQ(c.row, first.row + step);
      ASSERT_EQ(c.col, first.col);
      ASSERT_EQ(Sw128Offset(kRows, c.row, c.col),
                Sw128Offset(kRows, first.row, first.col) + static_cast<uint32_t>(step) * kSwizzleRowBytes);
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kRows * kCols / 8));
}

TEST(HopperLayout, CopiesCoverEveryChunkOnce) {
  ForEveryConfig([]<class T>() {
    if constexpr (!T::kProducer) {  // the others load by TMA
      CheckTileCopyCoversTile<T, T::kBlockM, T::kHeadDim>();
      CheckTileCopyCoversTile<T, T::kBlockN, T::kHeadDim>();
      CheckTileCopyCoversTile<T, T::kHeadDim, T::kBlockN>();
    }
  });
}

TEST(HopperLayout, OutputRowsCoverTheQueryTileOnce) {
  ForEveryConfig([]<class T>() {
    std::multiset<int> rows;
    for (int tid = 0; tid < 128 * T::kWarpGroups; ++tid) {
      if (tid % 4 != 0) continue;  // the four threads of a quad share their rows
      for (int h = 0; h < 2; ++h) rows.insert(OutputRow<T>(tid, h));
    }
    ASSERT_EQ(rows.size(), static_cast<size_t>(T::kBlockM));
    for (int r = 0; r < T::kBlockM; ++r) EXPECT_EQ(rows.count(r), 1u) << r;
  });
}

// ---- part 2: the block, emulated ------------------------------------------------------------------

// Vᵀ of every head as the kernel's TransposeV writes it: [head, dim, VtRow(nk)], padding keys zero.
std::vector<uint16_t> TransposeV(const Problem& pr) {
  const int64_t row = VtRow(pr.nk);
  std::vector<uint16_t> vt(static_cast<size_t>(pr.heads * pr.dh * row), 0);
  for (int h = 0; h < pr.heads; ++h)
    for (int d = 0; d < pr.dh; ++d)
      for (int j = 0; j < pr.nk; ++j)
        vt[static_cast<size_t>((h * pr.dh + d) * row + j)] = pr.v()[j * pr.row() + h * pr.dh + d];
  return vt;
}

// The TMA's copy of one box (cp.async.bulk.tensor, tiled, 128-byte swizzle), as the CUDA driver
// API (cuTensorMapEncodeTiled) and the PTX ISA describe it, independently of Sw128Offset: the
// box's elements, dims[0] fastest, packed from the destination (out-of-bounds ones zero), each at
// the shared-memory address whose 16-byte chunk bits (4-6) are XORed with its 128-byte row bits
// (7-9). The hardware swizzles the address, not the offset in the box, so the XOR takes dst + the
// offset; `smem` offsets are from the kernel's 1024-aligned base, which keeps those bits the
// address's. The kernel puts every box on the 1024-byte period (the wgmma descriptors' base
// offset of 0 reads the pattern from there), where the two coincide: a box off it is a kernel bug.
void TmaBox(Smem& smem, uint32_t dst, const uint16_t* global, const TmaTensor& t, TmaCoords c) {
  EXPECT_EQ(dst % 1024, 0u) << "a TMA box off the swizzle period";
  const int64_t n0 = t.box[0], n1 = t.box[1], n2 = t.box[2];
  for (int64_t i2 = 0; i2 < n2; ++i2)
    for (int64_t i1 = 0; i1 < n1; ++i1)
      for (int64_t i0 = 0; i0 < n0; ++i0) {
        const int64_t g0 = c.c0 + i0, g1 = c.c1 + i1, g2 = c.c2 + i2;
        const bool inside = g0 >= 0 && g1 >= 0 && g2 >= 0 && g0 < static_cast<int64_t>(t.dims[0]) &&
                            g1 < static_cast<int64_t>(t.dims[1]) && g2 < static_cast<int64_t>(t.dims[2]);
        const int64_t byte = g0 * 2 + g1 * static_cast<int64_t>(t.strides[0]) + g2 * static_cast<int64_t>(t.strides[1]);
        const uint16_t value = inside ? global[byte / 2] : uint16_t{0};
        const uint32_t at = dst + static_cast<uint32_t>(((i2 * n1 + i1) * n0 + i0) * 2);
        StoreBf16(smem, at ^ (((at >> 7) & 7u) << 4), value);
      }
}

// The tensor geometry the TMA kernel encodes, for every row layout a caller may hand it: token-major
// rows ([N, H, dh]), fused q/k/v rows, head-major ([H, N, dh]) and padded head-major rows. Each box
// of a tile (the last one partial) lands, through the TMA's own swizzle, exactly where the wgmma
// descriptors look for element (token, dim) (Sw128Offset), zeros past the last token; Vᵀ likewise.
// Strides the TMA cannot walk are refused (the kernel then runs its cp.async sibling).
TEST(HopperLayout, TmaBoxesLandWhereTheDescriptorsRead) {
  constexpr int kDh = 128, kRows = 128, kHeads = 3, kTokens = 2 * kRows + 37;
  auto value = [](int64_t token, int64_t head, int64_t dim) {
    return static_cast<uint16_t>((token * 7919 + head * 104729 + dim * 31 + 1) & 0xffff);
  };
  struct Layout {
    const char* name;
    int64_t row, head;  // element strides
  };
  const Layout layouts[] = {{"token-major", kHeads * kDh, kDh},
                            {"fused qkv", 3 * kHeads * kDh, kDh},
                            {"head-major", kDh, kTokens * kDh},
                            {"padded head-major", kDh + 8, (kTokens + 1) * (kDh + 8)}};
  for (const Layout& l : layouts) {
    SCOPED_TRACE(l.name);
    std::vector<uint16_t> g(static_cast<size_t>((kHeads - 1) * l.head + (kTokens - 1) * l.row + kDh), 0);
    for (int h = 0; h < kHeads; ++h)
      for (int t = 0; t < kTokens; ++t)
        for (int d = 0; d < kDh; ++d) g[static_cast<size_t>(h * l.head + t * l.row + d)] = value(t, h, d);
    const TmaTensor tensor = TokenTensor(kTokens, kHeads, kDh, l.row, l.head, kRows);
    ASSERT_TRUE(TmaEncodable(tensor));
    EXPECT_EQ(tensor.heads_inner, l.head <= l.row);
    for (int head = 0; head < kHeads; ++head) {
      for (int token0 = 0; token0 < kTokens; token0 += kRows) {
        Smem smem(kRows * kDh * 2, 0xff);
        for (int a = 0; a < kDh / 64; ++a) {
          TmaBox(smem, static_cast<uint32_t>(a * kRows * 128), g.data(), tensor,
                 TokenCoords(tensor.heads_inner, 64 * a, token0, head));
        }
        for (int r = 0; r < kRows; ++r)
          for (int d = 0; d < kDh; ++d) {
            const uint16_t want = token0 + r < kTokens ? value(token0 + r, head, d) : uint16_t{0};
            ASSERT_EQ(LoadBf16(smem, Sw128Offset(kRows, r, d)), want) << head << " " << token0 + r << " " << d;
          }
      }
    }
  }
  // Vᵀ [heads, dh, VtRow(nk)]: tile rows are dims, columns keys.
  const int nk = kTokens;
  const int64_t vt_row = VtRow(nk);
  std::vector<uint16_t> vt(static_cast<size_t>(kHeads * kDh * vt_row), 0);
  for (int h = 0; h < kHeads; ++h)
    for (int d = 0; d < kDh; ++d)
      for (int j = 0; j < nk; ++j) vt[static_cast<size_t>((h * kDh + d) * vt_row + j)] = value(j, h, d);
  const TmaTensor v = VtTensor(vt_row, kHeads, kDh);
  ASSERT_TRUE(TmaEncodable(v));
  for (int head = 0; head < kHeads; ++head) {
    for (int key0 = 0; key0 < nk; key0 += kRows) {
      Smem smem(kDh * kRows * 2, 0xff);
      for (int a = 0; a < kRows / 64; ++a) {
        TmaBox(smem, static_cast<uint32_t>(a * kDh * 128), vt.data(), v, TmaCoords{key0 + 64 * a, 0, head});
      }
      for (int d = 0; d < kDh; ++d)
        for (int c = 0; c < kRows; ++c) {
          const uint16_t want = key0 + c < nk ? value(key0 + c, head, d) : uint16_t{0};
          ASSERT_EQ(LoadBf16(smem, Sw128Offset(kDh, d, c)), want) << head << " " << d << " " << key0 + c;
        }
    }
  }
  // One token of a head-major view: row and head strides equal, encodable in the heads-outer order.
  EXPECT_TRUE(TmaEncodable(TokenTensor(1, kHeads, kDh, kDh, kDh, kRows)));
  EXPECT_FALSE(TokenTensor(1, kHeads, kDh, kDh, kDh, kRows).heads_inner);
  // Rows not on 16 bytes, and heads overlapping inside a row, are not TMA tensors.
  EXPECT_FALSE(TmaEncodable(TokenTensor(kTokens, kHeads, kDh, kHeads * kDh + 4, kDh, kRows)));
  EXPECT_FALSE(TmaEncodable(TokenTensor(kTokens, kHeads, kDh, kHeads * kDh, kDh / 2, kRows)));
}

// HopperForwardKernel's block (m_block, head): all threads' copies, then each step's warpgroups in
// turn; barriers are the boundaries between phases, as in the kernel. For HopperTmaKernel the
// producer's boxes (TokenTensor / VtTensor, TokenCoords) replace the copies; when they land
// relative to the consumers is TmaRingProtocol's subject, not this one's.
template <class T>
void TmaLoads(const Problem& pr, const std::vector<uint16_t>& vt, int m_block, int head, int tile, Smem& smem) {
  const int64_t row = pr.row();
  if (tile == 0) {
    const TmaTensor q = TokenTensor(pr.nq, pr.heads, T::kHeadDim, row, pr.dh, T::kBlockM);
    ASSERT_TRUE(TmaEncodable(q));
    for (int a = 0; a < T::kHeadDim / 64; ++a) {
      TmaBox(smem, static_cast<uint32_t>(a * T::kBlockM * 128), pr.q(), q,
             TokenCoords(q.heads_inner, 64 * a, m_block * T::kBlockM, head));
    }
  }
  const TmaTensor k = TokenTensor(pr.nk, pr.heads, T::kHeadDim, row, pr.dh, T::kBlockN);
  ASSERT_TRUE(TmaEncodable(k));
  for (int a = 0; a < T::kHeadDim / 64; ++a) {
    TmaBox(smem, KSlot<T>(tile) + static_cast<uint32_t>(a * T::kBlockN * 128), pr.k(), k,
           TokenCoords(k.heads_inner, 64 * a, tile * T::kBlockN, head));
  }
  if constexpr (T::kVMnMajor) {  // V as stored, boxed as K
    const TmaTensor v = TokenTensor(pr.nk, pr.heads, T::kHeadDim, row, pr.dh, T::kBlockN);
    ASSERT_TRUE(TmaEncodable(v));
    for (int a = 0; a < T::kHeadDim / 64; ++a) {
      TmaBox(smem, VtSlot<T>(tile) + static_cast<uint32_t>(a * T::kBlockN * 128), pr.v(), v,
             TokenCoords(v.heads_inner, 64 * a, tile * T::kBlockN, head));
    }
  } else {
    const TmaTensor v = VtTensor(VtRow(pr.nk), pr.heads, T::kHeadDim);
    ASSERT_TRUE(TmaEncodable(v));
    for (int a = 0; a < T::kVtCols / 64; ++a) {
      TmaBox(smem, VtSlot<T>(tile) + static_cast<uint32_t>(a * T::kHeadDim * 128), vt.data(), v,
             TmaCoords{tile * T::kBlockN + 64 * a, 0, head});
    }
  }
}

template <class T>
void EmulateBlock(const Problem& pr, const std::vector<uint16_t>& vt, int m_block, int head, Landing landing,
                  std::vector<float>& out) {
  Smem smem(T::kSmemBytes, 0xff);  // offsets from the aligned base; poison reads as NaN
  AsyncCopies copies(smem, landing);
  const Range qt = QueryTile<T>(m_block, pr.nq);
  const int n_tiles = KeyTileCount<T>(pr.nk);
  const int64_t vt_row = VtRow(pr.nk);
  const float scale_log2 = pr.scale * kLog2e;

  // The cp.async kernel's copies, by every thread: Q, and tile `tile` of K and Vᵀ. Templates, so
  // that the TMA configurations (TileCopy does not divide their 384 threads' work) never
  // instantiate them: their producer's boxes land before each step instead (TmaLoads).
  auto copy_q = [&]<class U>() {
    for (int tid = 0; tid < U::kThreads; ++tid) {
      for (int it = 0; it < TileCopy<U, U::kBlockM, U::kHeadDim>::kIters; ++it) {
        const Chunk c = TileCopy<U, U::kBlockM, U::kHeadDim>::At(tid, it);
        const uint16_t* src = c.row < qt.rows ? pr.q() + (qt.begin + c.row) * pr.row() + head * pr.dh + c.col : nullptr;
        copies.Copy(Sw128Offset(U::kBlockM, c.row, c.col), src);
      }
    }
  };
  auto load_kv = [&]<class U>(int tile) {
    const Range keys = KeyTile<U>(tile, pr.nk);
    for (int tid = 0; tid < U::kThreads; ++tid) {
      for (int it = 0; it < TileCopy<U, U::kBlockN, U::kHeadDim>::kIters; ++it) {
        const Chunk c = TileCopy<U, U::kBlockN, U::kHeadDim>::At(tid, it);
        const uint16_t* src =
            c.row < keys.rows ? pr.k() + (keys.begin + c.row) * pr.row() + head * pr.dh + c.col : nullptr;
        copies.Copy(KSlot<U>(tile) + Sw128Offset(U::kBlockN, c.row, c.col), src);
      }
      for (int it = 0; it < TileCopy<U, U::kHeadDim, U::kBlockN>::kIters; ++it) {
        const Chunk c = TileCopy<U, U::kHeadDim, U::kBlockN>::At(tid, it);  // row: dim, col: key in the tile
        const uint16_t* src =
            keys.begin + c.col < pr.nk ? vt.data() + (head * pr.dh + c.row) * vt_row + keys.begin + c.col : nullptr;
        copies.Copy(VtSlot<U>(tile) + Sw128Offset(U::kHeadDim, c.row, c.col), src);
      }
    }
  };
  if constexpr (!T::kProducer) {
    copy_q.template operator()<T>();
    load_kv.template operator()<T>(0);
    copies.Commit();
  }

  std::vector<Accumulators<T::kOTiles>> o(T::kWarpGroups, Accumulators<T::kOTiles>(128));
  std::vector<std::vector<SoftmaxState>> st(T::kWarpGroups, std::vector<SoftmaxState>(128));
  // P of each warpgroup's last tile, as A registers per k-step and thread (r_p).
  std::vector<std::vector<std::vector<ARegs>>> pending(
      T::kWarpGroups, std::vector<std::vector<ARegs>>(T::kPvSteps, std::vector<ARegs>(128)));

  // The kernel's lambdas, for warpgroup wg: issue_s + wait, softmax (alpha per thread), pack_p,
  // issue_pv + wait.
  auto scores = [&](int wg, int kt) {
    Accumulators<T::kSTiles> s(128);
    for (int ks = 0; ks < T::kQkSteps; ++ks) {
      Wgmma<T::kSTiles>(smem, nullptr, Descriptor(QOperand<T>(wg, ks)), Descriptor(KOperand<T>(kt, ks)), ks > 0, s);
    }
    return s;
  };
  auto softmax = [&](int wg, int kt, Accumulators<T::kSTiles>& s, std::vector<std::array<float, 2>>& alpha) {
    const Range kr = KeyTile<T>(kt, pr.nk);
    float lane_max[128][2];
    for (int t = 0; t < 128; ++t) {
      if (kr.rows < T::kBlockN) MaskKeys<T>(s[static_cast<size_t>(t)].v, t % 32, kr.begin, pr.nk);
      RowMax<T>(s[static_cast<size_t>(t)].v, lane_max[t]);
    }
    alpha.assign(128, {});
    for (int t = 0; t < 128; ++t) {
      float quad_max[2], a[2], ref[2];
      for (int h = 0; h < 2; ++h) {
        quad_max[h] = kNegInf;
        for (int l = t & ~3; l < (t & ~3) + 4; ++l) quad_max[h] = Max(quad_max[h], lane_max[l][h]);
      }
      MoveMax(st[wg][static_cast<size_t>(t)], quad_max, scale_log2, a, ref);
      ExpScores<T>(s[static_cast<size_t>(t)].v, st[wg][static_cast<size_t>(t)], ref, scale_log2);
      alpha[static_cast<size_t>(t)] = {a[0], a[1]};
    }
  };
  auto rescale = [&](int wg, const std::vector<std::array<float, 2>>& alpha) {
    for (int t = 0; t < 128; ++t) {
      const float a[2] = {alpha[static_cast<size_t>(t)][0], alpha[static_cast<size_t>(t)][1]};
      RescaleO<T>(o[wg][static_cast<size_t>(t)].v, a);
    }
  };
  auto pack_p = [&](int wg, Accumulators<T::kSTiles>& s) {
    for (int kk = 0; kk < T::kPvSteps; ++kk)
      for (int t = 0; t < 128; ++t)
        PackP<T>(s[static_cast<size_t>(t)].v, kk, pending[wg][kk][static_cast<size_t>(t)].r);
  };
  auto pv = [&](int wg, int tile) {
    for (int kk = 0; kk < T::kPvSteps; ++kk) {
      Wgmma<T::kOTiles>(smem, pending[wg][kk].data(), 0, VtDescriptorAt<T>(Descriptor(0), VtOperand<T>(tile, kk)), true,
                        o[wg], T::kVMnMajor);
    }
  };

  std::vector<std::array<float, 2>> alpha;
  for (int kt = 0; kt < n_tiles; ++kt) {
    if constexpr (T::kProducer) {
      TmaLoads<T>(pr, vt, m_block, head, kt, smem);
    } else {
      copies.Wait(0);  // then fence.proxy.async and __syncthreads
      if (kt + 1 < n_tiles) load_kv.template operator()<T>(kt + 1);
      copies.Commit();
    }
    for (int wg = 0; wg < T::kWarpGroups; ++wg) {
      Accumulators<T::kSTiles> s = scores(wg, kt);
      softmax(wg, kt, s, alpha);
      if constexpr (!T::kOverlap) {
        rescale(wg, alpha);
        pack_p(wg, s);
        pv(wg, kt);
      } else {
        // P(kt − 1)·V(kt − 1) lands after this step's softmax; then O moves to tile kt's max.
        if (kt > 0) {
          pv(wg, kt - 1);
          rescale(wg, alpha);
        }
        pack_p(wg, s);
      }
    }
  }
  if constexpr (T::kOverlap) {
    for (int wg = 0; wg < T::kWarpGroups; ++wg) pv(wg, n_tiles - 1);
  }

  for (int tid = 0; tid < 128 * T::kWarpGroups; ++tid) {  // the consumers
    const int wg = tid / 128, t = tid % 128;
    float inv[2];
    for (int h = 0; h < 2; ++h) {
      float sum = 0.0f;
      for (int l = t & ~3; l < (t & ~3) + 4; ++l) sum += st[wg][static_cast<size_t>(l)].sum[h];
      inv[h] = InverseSum(sum);
    }
    for (int nt = 0; nt < T::kOTiles; ++nt) {
      for (int h = 0; h < 2; ++h) {
        const int row = qt.begin + OutputRow<T>(tid, h);
        if (row >= pr.nq) continue;
        for (int e = 0; e < 2; ++e) {
          const int col = Accumulator(t, nt, 2 * h + e).col;
          out[(static_cast<size_t>(row) * pr.heads + head) * pr.dh + col] =
              o[wg][static_cast<size_t>(t)].v[nt][2 * h + e] * inv[h];
        }
      }
    }
  }
}

template <class T>
std::vector<float> Emulate(const Problem& pr, Landing landing) {
  const std::vector<uint16_t> vt = TransposeV(pr);
  std::vector<float> out(static_cast<size_t>(pr.nq) * pr.heads * pr.dh, std::nanf(""));
  for (int head = 0; head < pr.heads; ++head) {
    for (int m = 0; m < CeilDiv(pr.nq, T::kBlockM); ++m) EmulateBlock<T>(pr, vt, m, head, landing, out);
  }
  return out;
}

template <class T>
void RunCase(std::mt19937& rng, int nq, int nk, int heads, float amplitude) {
  SCOPED_TRACE("nq " + std::to_string(nq) + " nk " + std::to_string(nk) + " heads " + std::to_string(heads));
  const Problem pr = MakeProblem(rng, nq, nk, heads, T::kHeadDim, amplitude);
  const std::vector<double> want = Exact(pr);
  for (Landing landing : {Landing::kAtIssue, Landing::kAtWait}) {
    EXPECT_LT(WorstError(Emulate<T>(pr, landing), want), kBf16Tol)
        << (landing == Landing::kAtIssue ? "copies land at issue" : "copies land at the wait");
  }
}

// One query and one key; a partial second query tile and two heads with three key tiles, the last
// partial and its last 16-byte chunk of Vᵀ partly padding (nk odd); one partial key tile; large
// scores over two tiles and one key.
TEST(HopperEmulation, EveryConfigMatchesExactSoftmax) {
  auto rng = Rng();
  ForEveryConfig([&]<class T>() {
    RunCase<T>(rng, 1, 1, 1, 1.0f);
    RunCase<T>(rng, T::kBlockM + 5, 3 * T::kBlockN - 3, 2, 1.0f);
    RunCase<T>(rng, 20, T::kBlockN / 2, 1, 1.0f);
    RunCase<T>(rng, 70, 2 * T::kBlockN + 1, 1, 3.0f);
  });
}

// Scores that grow from key to key: every tile raises the running max, so every step rescales O.
TEST(HopperEmulation, RescalesWhenLaterTilesDominate) {
  auto rng = Rng();
  ForEveryConfig([&]<class T>() {
    Problem pr = MakeProblem(rng, 16, 3 * T::kBlockN - 5, 1, T::kHeadDim, 0.1f);
    std::vector<float> sign(static_cast<size_t>(pr.dh));
    for (float& x : sign) x = rng() % 2 ? 1.0f : -1.0f;
    for (int i = 0; i < pr.nq; ++i)
      for (int d = 0; d < pr.dh; ++d) {
        uint16_t& q = pr.qkv[i * pr.row() + d];
        q = Bf16Bits(sign[static_cast<size_t>(d)] + Bf16ToFloat(q));
      }
    const float step = 0.64f / static_cast<float>(pr.dh);
    for (int j = 0; j < pr.nk; ++j)
      for (int d = 0; d < pr.dh; ++d) {
        uint16_t& k = pr.qkv[j * pr.row() + pr.heads * pr.dh + d];
        k = Bf16Bits(Bf16ToFloat(k) + step * static_cast<float>(j) * sign[static_cast<size_t>(d)]);
      }
    const std::vector<double> want = Exact(pr);
    for (Landing landing : {Landing::kAtIssue, Landing::kAtWait}) {
      EXPECT_LT(WorstError(Emulate<T>(pr, landing), want), kBf16Tol);
    }
  });
}

}  // namespace
}  // namespace ds::cuda::flash::hopper
