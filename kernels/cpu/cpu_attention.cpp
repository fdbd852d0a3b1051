// Flash-style attention: each task owns one head and a block of queries, streams K/V in blocks and
// keeps a running max and sum per query (online softmax), so memory is one score tile plus one
// head's packed keys per thread, never an Nq×Nk matrix.
//
// Both tile products use one register-blocked micro-kernel instead of sgemm: at these sizes
// (depth = head_dim for q·kᵀ, width = head_dim for p·v) sgemm spends as long packing its operands
// as multiplying them. Here only kᵀ is packed, once per head and thread; q, p and v are read in
// place (v straight from its strided rows), so fused-qkv layouts cost nothing.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/rows.h"
#include "kernels/cpu/simd.h"

namespace ds {
namespace {

// 8 lanes: one AVX2 register. Wider generic vectors are not an option: where the ISA lacks them
// GCC keeps them on the stack (measured 8x slower on AVX2), and on Zen 4 the 512-bit FMA has the
// same throughput as two 256-bit ones anyway.
using Vec = float __attribute__((vector_size(32)));

struct AttentionTiles {
  static constexpr int64_t kVecLanes = 8;
  static constexpr int64_t kLanes = 16;    // keys per packed kᵀ panel, dims per p·v column chunk
  static constexpr int64_t kTileRows = 6;  // 6 rows × 2 vectors: 12 of AVX2's 16 registers
  static constexpr int64_t kQueries = 64;  // queries per task
  static constexpr int64_t kKeys = 256;    // keys per streamed K/V block
  static_assert(sizeof(Vec) == kVecLanes * sizeof(float));
  static_assert(kLanes == 2 * kVecLanes, "the micro-kernel holds two vectors per row");
  static_assert(kKeys % kLanes == 0, "key blocks are whole kᵀ panels");
  static_assert(kQueries >= kTileRows);
  static constexpr int64_t kTileFloats = kQueries * kKeys + 2 * kQueries;  // scores, max, sum
};
using T = AttentionTiles;

// c[r, 0:16] = alpha · Σ_k a[r, k] · b[k, 0:16]  (+ c[r, 0:16] when accumulating), r < kRows.
// Vectors move through memcpy (unaligned loads and stores) and never cross a function boundary.
template <int kRows>
DS_INLINE void MicroTile(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t depth,
                         float* c, int64_t ldc, float alpha, bool accumulate) {
  Vec acc[kRows][2] = {};
  for (int64_t k = 0; k < depth; ++k) {
    Vec b0, b1;
    std::memcpy(&b0, b + k * ldb, sizeof b0);
    std::memcpy(&b1, b + k * ldb + T::kVecLanes, sizeof b1);
    for (int r = 0; r < kRows; ++r) {
      const float ar = a[r * lda + k];
      acc[r][0] += ar * b0;
      acc[r][1] += ar * b1;
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int h = 0; h < 2; ++h) {
      float* cp = c + r * ldc + h * T::kVecLanes;
      Vec v = acc[r][h] * alpha;
      if (accumulate) {
        Vec old;
        std::memcpy(&old, cp, sizeof old);
        v += old;
      }
      std::memcpy(cp, &v, sizeof v);
    }
  }
}

// c[rows, 16·panels] = alpha · a[rows, depth] · b (+ c), b as `panels` 16-wide column panels.
DS_INLINE void PanelGemm(const float* a, int64_t lda, int64_t rows, const float* b, int64_t ldb,
                         int64_t panel_stride, int64_t panels, int64_t depth, float* c, int64_t ldc,
                         float alpha, bool accumulate) {
  for (int64_t r0 = 0; r0 < rows; r0 += T::kTileRows) {
    const float* ar = a + r0 * lda;
    float* cr = c + r0 * ldc;
    for (int64_t p = 0; p < panels; ++p) {
      const float* bp = b + p * panel_stride;
      float* cp = cr + p * T::kLanes;
      switch (std::min(T::kTileRows, rows - r0)) {
        case 6:
          MicroTile<6>(ar, lda, bp, ldb, depth, cp, ldc, alpha, accumulate);
          break;
        case 5:
          MicroTile<5>(ar, lda, bp, ldb, depth, cp, ldc, alpha, accumulate);
          break;
        case 4:
          MicroTile<4>(ar, lda, bp, ldb, depth, cp, ldc, alpha, accumulate);
          break;
        case 3:
          MicroTile<3>(ar, lda, bp, ldb, depth, cp, ldc, alpha, accumulate);
          break;
        case 2:
          MicroTile<2>(ar, lda, bp, ldb, depth, cp, ldc, alpha, accumulate);
          break;
        default:
          MicroTile<1>(ar, lda, bp, ldb, depth, cp, ldc, alpha, accumulate);
          break;
      }
    }
  }
}

// One head's q/k/v/o as base pointers plus token strides (in floats).
struct HeadViews {
  const float* q;
  const float* k;
  const float* v;
  float* o;
  int64_t qs, ks, vs, os;
};

// kᵀ of one head as 16-key panels [panel][dh][16], zero-padded past the last key.
DS_MULTIVERSION void PackKeys(const HeadViews& h, int64_t nk, int64_t dh, float* kt) {
  const int64_t panels = (nk + T::kLanes - 1) / T::kLanes;
  std::fill_n(kt, panels * T::kLanes * dh, 0.0f);
  for (int64_t j = 0; j < nk; ++j) {
    float* dst = kt + (j / T::kLanes) * dh * T::kLanes + j % T::kLanes;
    for (int64_t d = 0; d < dh; ++d) dst[d * T::kLanes] = h.k[j * h.ks + d];
  }
}

// Turns a tile of base-2 logits into probabilities against each row's running max, folds the
// tile into the running sums, and rescales the rows of o accumulated so far.
DS_INLINE void OnlineSoftmax(float* s, int64_t rows, int64_t cols, float* m, float* l, float* o,
                             int64_t os, int64_t dh) {
  for (int64_t i = 0; i < rows; ++i) {
    float* __restrict si = s + i * T::kKeys;
    float tile_max = -std::numeric_limits<float>::infinity();
    // Not std::max: its NaN semantics keep GCC from vectorizing the reduction.
#pragma omp simd reduction(max : tile_max)
    for (int64_t j = 0; j < cols; ++j) tile_max = si[j] > tile_max ? si[j] : tile_max;
    const float new_max = std::max(m[i], tile_max);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < cols; ++j) {
      si[j] = simd::Exp2(si[j] - new_max);
      sum += si[j];
    }
    const float correction = simd::Exp2(m[i] - new_max);
    l[i] = l[i] * correction + sum;
    m[i] = new_max;
    if (correction != 1.0f) {
      float* __restrict oi = o + i * os;
#pragma omp simd
      for (int64_t d = 0; d < dh; ++d) oi[d] *= correction;
    }
  }
}

// o[rows, dh] += p[rows, cols] · v[cols, dh]: 16-wide chunks of dh through the micro-kernel, the
// dh % 16 tail (small test shapes only) by plain loops.
DS_INLINE void AccumulatePV(const float* p, int64_t rows, int64_t cols, const float* v, int64_t vs,
                            int64_t dh, float* o, int64_t os) {
  const int64_t chunks = dh / T::kLanes;
  PanelGemm(p, T::kKeys, rows, v, vs, T::kLanes, chunks, cols, o, os, 1.0f, true);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      for (int64_t d = chunks * T::kLanes; d < dh; ++d)
        o[i * os + d] += p[i * T::kKeys + j] * v[j * vs + d];
    }
  }
}

DS_MULTIVERSION void AttendQueryBlock(const HeadViews& h, const float* kt, int64_t q0, int64_t rows,
                                      int64_t nk, int64_t dh, float scale_log2, float* tile) {
  float* s = tile;
  float* m = tile + T::kQueries * T::kKeys;
  float* l = m + T::kQueries;
  float* o = h.o + q0 * h.os;
  for (int64_t i = 0; i < rows; ++i) {
    std::fill_n(o + i * h.os, dh, 0.0f);
    m[i] = -std::numeric_limits<float>::infinity();
    l[i] = 0.0f;
  }
  for (int64_t k0 = 0; k0 < nk; k0 += T::kKeys) {
    const int64_t cols = std::min(T::kKeys, nk - k0);
    PanelGemm(h.q + q0 * h.qs, h.qs, rows, kt + k0 * dh, T::kLanes, dh * T::kLanes,
              (cols + T::kLanes - 1) / T::kLanes, dh, s, T::kKeys, scale_log2, false);
    OnlineSoftmax(s, rows, cols, m, l, o, h.os, dh);
    AccumulatePV(s, rows, cols, h.v + k0 * h.vs, h.vs, dh, o, h.os);
  }
  for (int64_t i = 0; i < rows; ++i) {
    const float inv = 1.0f / l[i];
    for (int64_t d = 0; d < dh; ++d) o[i * h.os + d] *= inv;
  }
}

}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                           Tensor& o) {
  const int64_t nq = q.shape[0], nk = k.shape[0], heads = q.shape[1], dh = q.shape[2];
  const int64_t blocks = (nq + T::kQueries - 1) / T::kQueries, tasks = heads * blocks;
  const int64_t packed_floats = (nk + T::kLanes - 1) / T::kLanes * T::kLanes * dh;
  const int64_t per_thread = T::kTileFloats + packed_floats;
  const int team = static_cast<int>(std::min<int64_t>(threads_, tasks));
  float* scratch_all = scratch(team * per_thread);
  const auto head_views = [&](int64_t head) {
    return HeadViews{q.f32() + head * FloatStride(q, 1),
                     k.f32() + head * FloatStride(k, 1),
                     v.f32() + head * FloatStride(v, 1),
                     o.f32() + head * FloatStride(o, 1),
                     FloatStride(q, 0),
                     FloatStride(k, 0),
                     FloatStride(v, 0),
                     FloatStride(o, 0)};
  };
#pragma omp parallel num_threads(team) if (4 * nq * nk * dh * heads >= kMinParallelFlops)
  {
    float* tile = scratch_all + omp_get_thread_num() * per_thread;
    float* kt = tile + T::kTileFloats;
    int64_t packed_head = -1;
    // Static scheduling hands each thread one contiguous run of tasks: a few heads, each packed
    // once.
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t head = t / blocks, q0 = t % blocks * T::kQueries;
      const HeadViews h = head_views(head);
      if (head != packed_head) {
        PackKeys(h, nk, dh, kt);
        packed_head = head;
      }
      AttendQueryBlock(h, kt, q0, std::min(T::kQueries, nq - q0), nk, dh, scale * simd::kLog2e,
                       tile);
    }
  }
}

}  // namespace ds
