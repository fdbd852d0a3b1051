// CPU checks of the flash attention kernel's index and numerics layer (suite cuda-host; needs no
// GPU and no CUDA toolkit), for every configuration the build compiles (flash::Candidates). Two parts:
//  1. The maps in flash_layout.h against independent transcriptions of the PTX ISA tables
//     (mma.m16n8k16 fragments, ldmatrix), plus swizzle bijectivity, bank-conflict freedom, the
//     kernel's incremental addresses (BlockAddress, TileCopy steps) and tile coverage.
//  2. A SIMT emulation of whole thread blocks running the kernel's algorithm, warp by warp and
//     lane by lane in the kernel's step order, through the same header functions and with the
//     cp.async groups of the K/V ring modelled, compared with a float64 softmax(q·kᵀ·scale)·v.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <deque>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kernels/cuda/attention/flash_layout.h"
#include "tests/cuda/flash_emulation.h"

namespace ds::cuda::flash {
namespace {

using namespace emu;  // NOLINT: the shared emulation pieces

// ---- the hardware model: PTX ISA text, transcribed independently of flash_layout.h -------------

// "Matrix Fragments for mma.m16n8k16 with floating point type" (.bf16 A/B, .f32 C/D).
RowCol PtxFragA(int lane, int i) {
  const int group_id = lane >> 2, thread_in_group = lane % 4;
  const int row = (i < 2 || (i >= 4 && i < 6)) ? group_id : group_id + 8;
  const int col = i < 4 ? thread_in_group * 2 + (i & 1) : thread_in_group * 2 + (i & 1) + 8;
  return {row, col};
}
RowCol PtxFragB(int lane, int i) {
  const int group_id = lane >> 2, thread_in_group = lane % 4;
  const int row = i < 2 ? thread_in_group * 2 + (i & 1) : thread_in_group * 2 + (i & 1) + 8;
  return {row, group_id};
}
RowCol PtxFragC(int lane, int i) {
  const int group_id = lane >> 2, thread_in_group = lane % 4;
  return {i < 2 ? group_id : group_id + 8, thread_in_group * 2 + (i & 1)};
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8m..8m+7 give the byte addresses of
// rows 0..7 of matrix m; lane L receives in register m the elements (row L/4, cols 2(L%4), +1)
// of matrix m, or with .trans the elements (rows 2(L%4), +1, col L/4). The lower-numbered element
// is in the low half.
void Ldmatrix(const Smem& smem, const uint32_t (&addr)[32], bool trans, uint32_t (&reg)[32][4]) {
  for (int lane = 0; lane < 32; ++lane) {
    for (int m = 0; m < 4; ++m) {
      auto element = [&](int row, int col) { return LoadBf16(smem, addr[8 * m + row] + 2 * col); };
      const int r = lane / 4, c = 2 * (lane % 4);
      const uint16_t lo = trans ? element(c, r) : element(r, c);
      const uint16_t hi = trans ? element(c + 1, r) : element(r, c + 1);
      reg[lane][m] = lo | (static_cast<uint32_t>(hi) << 16);
    }
  }
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d = a·b + c for the whole warp.
void Mma(const uint32_t (&a)[32][4], const uint32_t (&b)[32][2], float (&c)[32][4]) {
  double A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      const RowCol rc = PtxFragA(lane, i);
      A[rc.row][rc.col] = RegHalf(a[lane][i / 2], i % 2);
    }
    for (int i = 0; i < 4; ++i) {
      const RowCol rb = PtxFragB(lane, i), rc = PtxFragC(lane, i);
      B[rb.row][rb.col] = RegHalf(b[lane][i / 2], i % 2);
      C[rc.row][rc.col] = c[lane][i];
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 4; ++i) {
      const RowCol rc = PtxFragC(lane, i);
      double acc = C[rc.row][rc.col];
      for (int k = 0; k < 16; ++k) acc += A[rc.row][k] * B[k][rc.col];
      c[lane][i] = static_cast<float>(acc);
    }
  }
}

// Calls f.template operator()<T>() for every configuration of every head dim.
template <class F>
void ForEveryConfig(F&& f) {
  auto each = [&]<class T>(int) {
    SCOPED_TRACE("hd " + std::to_string(T::kHeadDim) + " " + ConfigName<T>());
    f.template operator()<T>();
  };
  ForEachConfig(Candidates<32>::List{}, each);
  ForEachConfig(Candidates<64>::List{}, each);
  ForEachConfig(Candidates<128>::List{}, each);
}

TEST(FlashLayout, ConfigNamesAreDistinctPerHeadDim) {
  auto distinct = []<int kHeadDim>() {
    std::set<std::string> names;
    ForEachConfig(typename Candidates<kHeadDim>::List{}, [&]<class T>(int) { names.insert(ConfigName<T>()); });
    EXPECT_EQ(static_cast<int>(names.size()), Candidates<kHeadDim>::List::kSize) << "hd " << kHeadDim;
    EXPECT_LT(Candidates<kHeadDim>::kDefault, Candidates<kHeadDim>::List::kSize);
  };
  distinct.template operator()<32>();
  distinct.template operator()<64>();
  distinct.template operator()<128>();
  EXPECT_EQ((ConfigName<Traits<128, 4, 2, 32, 3, false>>()), "w4x2_k32_s3_qs");
}

// ---- part 1: the maps ----------------------------------------------------------------------------

TEST(FlashLayout, FragmentMapsMatchThePtxIsa) {
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(FragA(lane, i).row, PtxFragA(lane, i).row) << lane << " " << i;
      EXPECT_EQ(FragA(lane, i).col, PtxFragA(lane, i).col) << lane << " " << i;
    }
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(FragB(lane, i).row, PtxFragB(lane, i).row) << lane << " " << i;
      EXPECT_EQ(FragB(lane, i).col, PtxFragB(lane, i).col) << lane << " " << i;
      EXPECT_EQ(FragC(lane, i).row, PtxFragC(lane, i).row) << lane << " " << i;
      EXPECT_EQ(FragC(lane, i).col, PtxFragC(lane, i).col) << lane << " " << i;
    }
  }
}

TEST(FlashLayout, FragmentsCoverTheirMatricesOnce) {
  std::set<int> a, b, c;
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) a.insert(FragA(lane, i).row * 16 + FragA(lane, i).col);
    for (int i = 0; i < 4; ++i) b.insert(FragB(lane, i).row * 8 + FragB(lane, i).col);
    for (int i = 0; i < 4; ++i) c.insert(FragC(lane, i).row * 8 + FragC(lane, i).col);
  }
  EXPECT_EQ(a.size(), 256u);
  EXPECT_EQ(b.size(), 128u);
  EXPECT_EQ(c.size(), 128u);
}

// The register reuse at the heart of FA2: S accumulators become the A operand of P·V in place.
TEST(FlashLayout, TwoAccumulatorTilesAreOneAFragment) {
  for (int lane = 0; lane < 32; ++lane) {
    for (int j = 0; j < 2; ++j) {
      for (int i = 0; i < 4; ++i) {
        const RowCol c = FragC(lane, i), a = FragA(lane, 4 * j + i);
        EXPECT_EQ(c.row, a.row);
        EXPECT_EQ(c.col + 8 * j, a.col);
      }
    }
  }
}

template <class T>
void CheckSwizzleIsABijectionOnChunks(int rows) {
  std::set<uint32_t> seen;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < T::kHeadDim; c += 8) {
      const uint32_t base = SwizzledOffset<T::kRowBytes>(r, c);
      EXPECT_EQ(base % 16, 0u);
      EXPECT_LT(base, static_cast<uint32_t>(rows * T::kRowBytes));
      for (int e = 0; e < 8; ++e) EXPECT_EQ(SwizzledOffset<T::kRowBytes>(r, c + e), base + 2 * e);
      seen.insert(base);
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(rows * T::kChunksPerRow));
}

// Shared memory serves 128 bytes per wavefront: an ldmatrix phase (8 lanes × 16 bytes) is
// conflict-free when its 8 addresses fall into 8 different 16-byte bank groups.
template <class T>
void CheckLdmatrixIsConflictFree(RowCol (*map)(int), int rows, int cols) {
  for (int r0 = 0; r0 < rows; r0 += 16) {
    for (int c0 = 0; c0 < cols; c0 += 16) {
      for (int m = 0; m < 4; ++m) {
        std::set<uint32_t> groups;
        for (int lane = 8 * m; lane < 8 * m + 8; ++lane) {
          const RowCol rc = map(lane);
          groups.insert((SwizzledOffset<T::kRowBytes>(r0 + rc.row, c0 + rc.col) / 16) % 8);
        }
        EXPECT_EQ(groups.size(), 8u) << "hd " << T::kHeadDim << " block " << r0 << "," << c0 << " matrix " << m;
      }
    }
  }
}

template <class T>
void CheckSmemLayout() {
  CheckSwizzleIsABijectionOnChunks<T>(T::kBlockM);
  CheckSwizzleIsABijectionOnChunks<T>(T::kBlockN);
  CheckLdmatrixIsConflictFree<T>(LdmatrixA, T::kBlockM, T::kHeadDim);
  CheckLdmatrixIsConflictFree<T>(LdmatrixK, T::kBlockN, T::kHeadDim);
  CheckLdmatrixIsConflictFree<T>(LdmatrixV, T::kBlockN, T::kHeadDim);
}

TEST(FlashLayout, SwizzleIsABijectionAndLdmatrixConflictFree) {
  ForEveryConfig([]<class T>() { CheckSmemLayout<T>(); });
}

// The kernel's ldmatrix addresses (a lane base, then one XOR and an immediate per block) are the
// swizzled addresses of the rows and columns the fragment maps name, in every tile and ring slot.
template <class T>
void CheckBlockAddresses() {
  for (int lane = 0; lane < 32; ++lane) {
    const RowCol qa = LdmatrixA(lane), kb = LdmatrixK(lane), vb = LdmatrixV(lane);
    for (int warp = 0; warp < T::kWarps; ++warp) {
      const uint32_t base = QLaneBase<T>(0, qa, warp);
      for (int mt = 0; mt < T::kMTiles; ++mt) {
        for (int ks = 0; ks < T::kQkSteps; ++ks) {
          ASSERT_EQ(BlockAddress<T>(base, mt, ks),
                    SwizzledOffset<T::kRowBytes>(warp * T::kRowsPerWarp + mt * 16 + qa.row, ks * 16 + qa.col))
              << "Q lane " << lane << " warp " << warp << " mt " << mt << " ks " << ks;
        }
      }
    }
    for (int tile = 0; tile < T::kStages; ++tile) {
      const uint32_t k_tile = T::kKOffset + KVSlotOffset<T>(tile), v_tile = T::kVOffset + KVSlotOffset<T>(tile);
      ASSERT_EQ(KVSlotOffset<T>(tile + T::kStages), KVSlotOffset<T>(tile));
      ASSERT_LE(v_tile + T::kKVTileBytes, static_cast<uint32_t>(T::kSmemBytes));
      for (int i = 0; i < T::kBlockN / 16; ++i) {
        for (int j = 0; j < T::kHeadDim / 16; ++j) {
          ASSERT_EQ(BlockAddress<T>(KLaneBase<T>(k_tile, kb), i, j),
                    k_tile + SwizzledOffset<T::kRowBytes>(16 * i + kb.row, 16 * j + kb.col))
              << "K lane " << lane << " slot " << tile << " block " << i << "," << j;
          ASSERT_EQ(BlockAddress<T>(VLaneBase<T>(v_tile, vb), i, j),
                    v_tile + SwizzledOffset<T::kRowBytes>(16 * i + vb.row, 16 * j + vb.col))
              << "V lane " << lane << " slot " << tile << " block " << i << "," << j;
        }
      }
    }
  }
}

TEST(FlashLayout, BlockAddressesAreTheSwizzledAddresses) {
  ForEveryConfig([]<class T>() { CheckBlockAddresses<T>(); });
}

// A 16×16 block of a swizzled tile at (r0, c0), read through ldmatrix with the lane addresses the
// kernel uses, must land in the registers the mma fragment maps name.
template <class T>
void CheckLdmatrixFeedsMma() {
  Smem smem(static_cast<size_t>(T::kBlockN * T::kRowBytes));
  auto value = [](int r, int c) { return static_cast<uint16_t>(r * 1000 + c); };  // exact in b16
  for (int r = 0; r < T::kBlockN; ++r) {
    for (int c = 0; c < T::kHeadDim; ++c) StoreBf16(smem, SwizzledOffset<T::kRowBytes>(r, c), value(r, c));
  }
  const int r0 = 16, c0 = T::kHeadDim - 16;
  uint32_t addr[32], reg[32][4];
  auto half = [](uint32_t reg_value, int h) { return static_cast<uint16_t>(reg_value >> (16 * h)); };

  for (int lane = 0; lane < 32; ++lane) {
    addr[lane] = SwizzledOffset<T::kRowBytes>(r0 + LdmatrixA(lane).row, c0 + LdmatrixA(lane).col);
  }
  Ldmatrix(smem, addr, false, reg);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      const RowCol a = FragA(lane, i);  // A[query][dim]
      ASSERT_EQ(half(reg[lane][i / 2], i % 2), value(r0 + a.row, c0 + a.col)) << "A lane " << lane;
    }
  }

  for (int lane = 0; lane < 32; ++lane) {
    addr[lane] = SwizzledOffset<T::kRowBytes>(r0 + LdmatrixK(lane).row, c0 + LdmatrixK(lane).col);
  }
  Ldmatrix(smem, addr, false, reg);
  for (int lane = 0; lane < 32; ++lane) {
    for (int tile = 0; tile < 2; ++tile) {
      for (int i = 0; i < 4; ++i) {
        const RowCol b = FragB(lane, i);  // B[k = dim][n = key] = K[key][dim]
        ASSERT_EQ(half(reg[lane][2 * tile + i / 2], i % 2), value(r0 + 8 * tile + b.col, c0 + b.row))
            << "K lane " << lane;
      }
    }
  }

  for (int lane = 0; lane < 32; ++lane) {
    addr[lane] = SwizzledOffset<T::kRowBytes>(r0 + LdmatrixV(lane).row, c0 + LdmatrixV(lane).col);
  }
  Ldmatrix(smem, addr, true, reg);
  for (int lane = 0; lane < 32; ++lane) {
    for (int tile = 0; tile < 2; ++tile) {
      for (int i = 0; i < 4; ++i) {
        const RowCol b = FragB(lane, i);  // B[k = key][n = dim] = V[key][dim]
        ASSERT_EQ(half(reg[lane][2 * tile + i / 2], i % 2), value(r0 + b.row, c0 + 8 * tile + b.col))
            << "V lane " << lane;
      }
    }
  }
}

TEST(FlashLayout, LdmatrixAddressesProduceMmaFragments) {
  ForEveryConfig([]<class T>() { CheckLdmatrixFeedsMma<T>(); });
}

// Every chunk of the tile once; and the kernel's walk (first chunk, then kRowsPerIter rows and
// kRowsPerIter·kRowBytes bytes per iteration) is At() with its swizzled address.
template <class T, int kRows>
void CheckTileCopyCoversTile() {
  using Copy = TileCopy<T, kRows>;
  std::set<int> seen;
  for (int tid = 0; tid < T::kThreads; ++tid) {
    const Chunk first = Copy::At(tid, 0);
    for (int it = 0; it < Copy::kIters; ++it) {
      const Chunk c = Copy::At(tid, it);
      ASSERT_LT(c.row, kRows);
      ASSERT_EQ(c.col % 8, 0);
      ASSERT_LT(c.col, T::kHeadDim);
      ASSERT_EQ(c.row, first.row + it * Copy::kRowsPerIter);
      ASSERT_EQ(c.col, first.col);
      ASSERT_EQ(SwizzledOffset<T::kRowBytes>(c.row, c.col),
                SwizzledOffset<T::kRowBytes>(first.row, first.col) + it * Copy::kRowsPerIter * T::kRowBytes);
      seen.insert(c.row * T::kHeadDim + c.col);
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kRows * T::kChunksPerRow));
}

template <class T>
void CheckTilesCoverEveryRowOnce() {
  for (int n : {1, 15, 64, 127, 128, 129, 255, 256, 257, 300, 32760}) {
    std::vector<int> hits(static_cast<size_t>(n), 0);
    for (int m = 0; m < CeilDiv(n, T::kBlockM); ++m) {
      const Range r = QueryTile<T>(m, n);
      ASSERT_GT(r.rows, 0);
      ASSERT_LE(r.rows, T::kBlockM);
      for (int i = 0; i < r.rows; ++i) ++hits[static_cast<size_t>(r.begin + i)];
    }
    std::fill(hits.begin(), hits.end(), hits[0] - 1);
    for (int j = 0; j < KeyTileCount<T>(n); ++j) {
      const Range r = KeyTile<T>(j, n);
      ASSERT_GT(r.rows, 0);
      for (int i = 0; i < r.rows; ++i) ++hits[static_cast<size_t>(r.begin + i)];
    }
    for (int h : hits) ASSERT_EQ(h, 1) << "n " << n;
  }
  // Each warp's rows: disjoint, and together the block's tile.
  std::set<int> rows;
  for (int warp = 0; warp < T::kWarps; ++warp) {
    for (int mt = 0; mt < T::kMTiles; ++mt) {
      for (int lane = 0; lane < 32; ++lane) {
        for (int h = 0; h < 2; ++h) {
          const int row = OutputRow<T>(warp, mt, lane, h);
          ASSERT_EQ(row, warp * T::kRowsPerWarp + mt * 16 + FragC(lane, 2 * h).row);
          rows.insert(row);
        }
      }
    }
  }
  EXPECT_EQ(static_cast<int>(rows.size()), T::kBlockM);
  EXPECT_EQ(*rows.rbegin(), T::kBlockM - 1);
  CheckTileCopyCoversTile<T, T::kBlockM>();
  CheckTileCopyCoversTile<T, T::kBlockN>();
}

TEST(FlashLayout, TilesCoverEveryRowOnce) {
  ForEveryConfig([]<class T>() { CheckTilesCoverEveryRowOnce<T>(); });
}

// RowMax on its own: the softmax's output hardly depends on the max it is taken against (only
// exp2's range does), so the emulations cannot see a wrong one. Each element of a lane's S in
// turn holds the largest value (every S width the kernels use: 4, 8, 16, 22 n8 tiles), and a
// row half may be all −inf (masked): the result is the plain max of each half.
template <int kTiles>
struct STiles {
  static constexpr int kSTiles = kTiles;
};

template <int kTiles>
void CheckRowMax(std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-5.0f, 5.0f);
  for (int planted = 0; planted < kTiles * 4; ++planted) {
    for (bool masked_half : {false, true}) {
      float s[kTiles][4];
      float want[2] = {kNegInf, kNegInf};
      for (int nt = 0; nt < kTiles; ++nt) {
        for (int i = 0; i < 4; ++i) {
          float v = nt * 4 + i == planted ? 100.0f + static_cast<float>(planted) : dist(rng);
          if (masked_half && (i >> 1) != ((planted % 4) >> 1)) v = kNegInf;
          s[nt][i] = v;
          want[i >> 1] = std::max(want[i >> 1], v);
        }
      }
      float got[2];
      RowMax<STiles<kTiles>>(s, got);
      EXPECT_EQ(got[0], want[0]) << kTiles << " tiles, planted " << planted << (masked_half ? ", masked" : "");
      EXPECT_EQ(got[1], want[1]) << kTiles << " tiles, planted " << planted << (masked_half ? ", masked" : "");
    }
  }
}

TEST(FlashLayout, RowMaxIsTheMaxOfEachRowHalf) {
  std::mt19937 rng(7);
  CheckRowMax<4>(rng);
  CheckRowMax<8>(rng);
  CheckRowMax<16>(rng);
  CheckRowMax<22>(rng);
}

TEST(FlashLayout, Bf16RoundsToNearestEven) {
  EXPECT_EQ(Bf16Bits(1.0f), 0x3f80);
  EXPECT_EQ(Bf16Bits(-2.0f), 0xc000);
  EXPECT_EQ(Bf16Bits(1.0f + 1.0f / 256), 0x3f80);  // halfway, even below
  EXPECT_EQ(Bf16Bits(1.0f + 3.0f / 256), 0x3f82);  // halfway, even above
  EXPECT_EQ(Bf16Bits(1.0f + 1.5f / 256), 0x3f81);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(Bf16Bits(std::nanf("")))));
  EXPECT_EQ(PackBf16x2(1.0f, -2.0f), 0xc0003f80u);
}

// ---- part 2: one block, emulated ----------------------------------------------------------------

// What one warp keeps in registers through the main loop, for each of its 32 lanes.
template <class T>
struct WarpState {
  uint32_t q[T::kMTiles][T::kQkSteps][32][4];  // Q fragments (kQInRegs)
  float o[T::kMTiles][32][T::kOTiles][4] = {};
  SoftmaxState st[T::kMTiles][32];
};

// d[lanes] += a·b for the n8 half `half` of a 16-column B fragment pair (b: one ldmatrix.x4).
void MmaHalf(const uint32_t (&a)[32][4], const uint32_t (&b)[32][4], int half, float (*d)[4], int d_stride) {
  uint32_t bb[32][2];
  float c[32][4];
  for (int lane = 0; lane < 32; ++lane) {
    bb[lane][0] = b[lane][2 * half];
    bb[lane][1] = b[lane][2 * half + 1];
    for (int i = 0; i < 4; ++i) c[lane][i] = d[lane * d_stride][i];
  }
  Mma(a, bb, c);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 4; ++i) d[lane * d_stride][i] = c[lane][i];
  }
}

// One warp's main-loop step on key tile kt (FlashForwardKernel's loop body after the copies).
template <class T>
void WarpStep(const Smem& smem, WarpState<T>& w, int warp, int kt, Range kr, int nk, float scale_log2) {
  using S = float[32][T::kSTiles][4];
  std::vector<S> s(static_cast<size_t>(T::kMTiles));  // S per row tile, per lane
  for (auto& tile : s)
    for (auto& lane_s : tile)
      for (auto& frag : lane_s)
        for (float& x : frag) x = 0.0f;
  uint32_t addr[32];
  const uint32_t k_tile = T::kKOffset + KVSlotOffset<T>(kt), v_tile = T::kVOffset + KVSlotOffset<T>(kt);

  for (int ks = 0; ks < T::kQkSteps; ++ks) {
    uint32_t a[T::kMTiles][32][4];
    for (int mt = 0; mt < T::kMTiles; ++mt) {
      if constexpr (T::kQInRegs) {
        for (int lane = 0; lane < 32; ++lane)
          for (int r = 0; r < 4; ++r) a[mt][lane][r] = w.q[mt][ks][lane][r];
      } else {
        for (int lane = 0; lane < 32; ++lane) {
          addr[lane] = BlockAddress<T>(QLaneBase<T>(0, LdmatrixA(lane), warp), mt, ks);
        }
        Ldmatrix(smem, addr, false, a[mt]);
      }
    }
    for (int nt2 = 0; nt2 < T::kSTiles / 2; ++nt2) {
      uint32_t b[32][4];
      for (int lane = 0; lane < 32; ++lane)
        addr[lane] = BlockAddress<T>(KLaneBase<T>(k_tile, LdmatrixK(lane)), nt2, ks);
      Ldmatrix(smem, addr, false, b);
      for (int mt = 0; mt < T::kMTiles; ++mt) {
        for (int half = 0; half < 2; ++half) MmaHalf(a[mt], b, half, &s[mt][0][2 * nt2 + half], T::kSTiles);
      }
    }
  }

  for (int mt = 0; mt < T::kMTiles; ++mt) {
    if (kr.rows < T::kBlockN) {
      for (int lane = 0; lane < 32; ++lane) MaskKeys<T>(s[mt][lane], lane, kr.begin, nk);
    }
    float lane_max[32][2];
    for (int lane = 0; lane < 32; ++lane) RowMax<T>(s[mt][lane], lane_max[lane]);
    for (int lane = 0; lane < 32; ++lane) {
      float quad_max[2];
      for (int h = 0; h < 2; ++h) {
        quad_max[h] = kNegInf;
        for (int l = lane & ~3; l < (lane & ~3) + 4; ++l) quad_max[h] = Max(quad_max[h], lane_max[l][h]);
      }
      SoftmaxStep<T>(s[mt][lane], w.o[mt][lane], w.st[mt][lane], quad_max, scale_log2);
    }
  }

  for (int kk = 0; kk < T::kPvSteps; ++kk) {
    uint32_t a[T::kMTiles][32][4];
    for (int mt = 0; mt < T::kMTiles; ++mt) {
      for (int lane = 0; lane < 32; ++lane) PackP<T>(s[mt][lane], kk, a[mt][lane]);
    }
    for (int dt2 = 0; dt2 < T::kOTiles / 2; ++dt2) {
      uint32_t b[32][4];
      for (int lane = 0; lane < 32; ++lane)
        addr[lane] = BlockAddress<T>(VLaneBase<T>(v_tile, LdmatrixV(lane)), kk, dt2);
      Ldmatrix(smem, addr, true, b);
      for (int mt = 0; mt < T::kMTiles; ++mt) {
        for (int half = 0; half < 2; ++half) MmaHalf(a[mt], b, half, &w.o[mt][0][2 * dt2 + half], T::kOTiles);
      }
    }
  }
}

// The kernel's block (m_block, head): the copies of every thread, then each step's warps in turn,
// in FlashForwardKernel's order; a barrier is the boundary between two phases of the loop.
template <class T>
void EmulateBlock(const Problem& pr, int m_block, int head, Landing landing, std::vector<float>& out) {
  Smem smem(T::kSmemBytes, 0xff);  // poison: a read of an unwritten byte gives NaN
  AsyncCopies copies(smem, landing);
  const int64_t head_off = static_cast<int64_t>(head) * pr.dh;
  const Range qt = QueryTile<T>(m_block, pr.nq);
  const int n_tiles = KeyTileCount<T>(pr.nk);
  const float scale_log2 = pr.scale * kLog2e;

  auto load_tile = [&]<int kRows>(uint32_t tile, const uint16_t* g, Range range) {
    for (int tid = 0; tid < T::kThreads; ++tid) {
      for (int it = 0; it < TileCopy<T, kRows>::kIters; ++it) {
        const Chunk c = TileCopy<T, kRows>::At(tid, it);
        const uint16_t* src = c.row < range.rows ? g + (range.begin + c.row) * pr.row() + head_off + c.col : nullptr;
        copies.Copy(tile + SwizzledOffset<T::kRowBytes>(c.row, c.col), src);
      }
    }
  };
  auto load_kv = [&](int tile) {
    if (tile >= n_tiles) return;
    const Range keys = KeyTile<T>(tile, pr.nk);
    load_tile.template operator()<T::kBlockN>(T::kKOffset + KVSlotOffset<T>(tile), pr.k(), keys);
    load_tile.template operator()<T::kBlockN>(T::kVOffset + KVSlotOffset<T>(tile), pr.v(), keys);
  };

  load_tile.template operator()<T::kBlockM>(0, pr.q(), qt);
  for (int tile = 0; tile < T::kStages - 1; ++tile) {
    load_kv(tile);
    copies.Commit();
  }
  copies.Wait(T::kGroupsInFlight);  // then __syncthreads

  std::vector<WarpState<T>> warps(static_cast<size_t>(T::kWarps));
  if constexpr (T::kQInRegs) {
    for (int warp = 0; warp < T::kWarps; ++warp) {
      for (int mt = 0; mt < T::kMTiles; ++mt) {
        for (int ks = 0; ks < T::kQkSteps; ++ks) {
          uint32_t addr[32];
          for (int lane = 0; lane < 32; ++lane)
            addr[lane] = BlockAddress<T>(QLaneBase<T>(0, LdmatrixA(lane), warp), mt, ks);
          Ldmatrix(smem, addr, false, warps[static_cast<size_t>(warp)].q[mt][ks]);
        }
      }
    }
  }

  for (int kt = 0; kt < n_tiles; ++kt) {
    if (kt > 0) copies.Wait(T::kGroupsInFlight);  // then __syncthreads
    load_kv(PrefetchTile<T>(kt));
    copies.Commit();
    for (int warp = 0; warp < T::kWarps; ++warp) {
      WarpStep<T>(smem, warps[static_cast<size_t>(warp)], warp, kt, KeyTile<T>(kt, pr.nk), pr.nk, scale_log2);
    }
  }

  for (int warp = 0; warp < T::kWarps; ++warp) {
    const WarpState<T>& w = warps[static_cast<size_t>(warp)];
    for (int mt = 0; mt < T::kMTiles; ++mt) {
      for (int lane = 0; lane < 32; ++lane) {
        float inv[2];
        for (int h = 0; h < 2; ++h) {
          float sum = 0.0f;
          for (int l = lane & ~3; l < (lane & ~3) + 4; ++l) sum += w.st[mt][l].sum[h];
          inv[h] = InverseSum(sum);
        }
        for (int dt = 0; dt < T::kOTiles; ++dt) {
          for (int h = 0; h < 2; ++h) {
            const int row = qt.begin + OutputRow<T>(warp, mt, lane, h);
            if (row >= pr.nq) continue;
            for (int e = 0; e < 2; ++e) {
              const int col = dt * 8 + FragC(lane, 2 * h + e).col;
              out[(static_cast<size_t>(row) * pr.heads + head) * pr.dh + col] = w.o[mt][lane][dt][2 * h + e] * inv[h];
            }
          }
        }
      }
    }
  }
}

template <class T>
std::vector<float> Emulate(const Problem& pr, Landing landing) {
  std::vector<float> out(static_cast<size_t>(pr.nq) * pr.heads * pr.dh, std::nanf(""));
  for (int head = 0; head < pr.heads; ++head) {
    for (int m = 0; m < CeilDiv(pr.nq, T::kBlockM); ++m) EmulateBlock<T>(pr, m, head, landing, out);
  }
  return out;
}

struct Case {
  int nq, nk, heads;
  float amplitude;
};

template <class T>
void RunCase(std::mt19937& rng, const Case& c) {
  SCOPED_TRACE("nq " + std::to_string(c.nq) + " nk " + std::to_string(c.nk) + " heads " + std::to_string(c.heads) +
               " amplitude " + std::to_string(c.amplitude));
  const Problem pr = MakeProblem(rng, c.nq, c.nk, c.heads, T::kHeadDim, c.amplitude);
  const std::vector<double> want = Exact(pr);
  for (Landing landing : {Landing::kAtIssue, Landing::kAtWait}) {
    const double err = WorstError(Emulate<T>(pr, landing), want);
    EXPECT_LT(err, kBf16Tol) << (landing == Landing::kAtIssue ? "copies land at issue" : "copies land at the wait");
  }
}

// Per configuration: one query and one key; a partial second query tile (masking, the output
// rows past nq), two heads (strides) and more key tiles than ring slots, the last partial
// (online rescaling, ring reuse); fewer key tiles than the prologue issues (empty groups); and
// large scores.
TEST(FlashEmulation, EveryConfigMatchesExactSoftmax) {
  auto rng = Rng();
  ForEveryConfig([&]<class T>() {
    RunCase<T>(rng, {1, 1, 1, 1.0f});
    RunCase<T>(rng, {T::kBlockM + 5, (T::kStages + 2) * T::kBlockN - 3, 2, 1.0f});
    RunCase<T>(rng, {20, T::kBlockN / 2, 1, 1.0f});
    RunCase<T>(rng, {T::kBlockM - 1, 2 * T::kBlockN + 1, 1, 3.0f});
  });
}

// Scores that grow (or shrink) from key to key: with growing scores every tile raises the running
// max, so every step rescales O and the sums; the largest scores (~8·dh·0.01·nk·scale ≈ 25) would
// also lose all precision in exp without subtracting the max.
template <class T>
void CheckRescaling(std::mt19937& rng) {
  for (bool increasing : {true, false}) {
    Problem pr = MakeProblem(rng, 16, 5 * T::kBlockN - 3, 1, T::kHeadDim, 0.1f);
    std::vector<float> sign(static_cast<size_t>(pr.dh));
    for (float& x : sign) x = rng() % 2 ? 1.0f : -1.0f;
    for (int i = 0; i < pr.nq; ++i) {
      for (int d = 0; d < pr.dh; ++d) {
        uint16_t& q = pr.qkv[i * pr.row() + d];
        q = Bf16Bits(sign[d] + Bf16ToFloat(q));
      }
    }
    const float step = 0.64f / static_cast<float>(pr.dh);  // 0.01 per key at dh 64
    for (int j = 0; j < pr.nk; ++j) {
      const float bias = step * static_cast<float>(increasing ? j : pr.nk - j);
      for (int d = 0; d < pr.dh; ++d) {
        uint16_t& k = pr.qkv[j * pr.row() + pr.heads * pr.dh + d];
        k = Bf16Bits(Bf16ToFloat(k) + bias * sign[d]);
      }
    }
    const std::vector<double> want = Exact(pr);
    for (Landing landing : {Landing::kAtIssue, Landing::kAtWait}) {
      EXPECT_LT(WorstError(Emulate<T>(pr, landing), want), kBf16Tol) << (increasing ? "increasing" : "decreasing");
    }
  }
}

TEST(FlashEmulation, RescalesWhenLaterTilesDominate) {
  auto rng = Rng();
  ForEveryConfig([&]<class T>() { CheckRescaling<T>(rng); });
}

}  // namespace
}  // namespace ds::cuda::flash
