#include "kernels/cuda/attention/flash_attention.cuh"

#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_check.h"

#ifndef DS_CUDA_ARCHS
#define DS_CUDA_ARCHS "unrecorded architectures"
#endif

namespace ds::cuda::flash {
namespace {

// ---- PTX wrappers ----------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared, bypassing L1. A source size of 0 writes 16 zero bytes: the rows past
// the end of a partial tile read nothing and hold zeros (finite, then masked or ignored).
__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void CpAsyncWaitAll() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void Ldmatrix(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void LdmatrixTrans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d += a·b for one m16n8k16 tile (bf16 in, f32 accumulate).
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float QuadMax(float v) {
  v = Max(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return Max(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float QuadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// ---- the kernel ------------------------------------------------------------------------------------

// Rows [range.begin, range.begin + kRows) of one head (g = that head's row 0) into a swizzled tile.
template <class T, int kRows>
__device__ __forceinline__ void LoadTile(uint32_t s_tile, const uint16_t* g, int64_t row_stride, Range range, int tid) {
#pragma unroll
  for (int it = 0; it < TileCopy<T, kRows>::kIters; ++it) {
    const Chunk c = TileCopy<T, kRows>::At(tid, it);
    const bool valid = c.row < range.rows;
    const uint16_t* src = valid ? g + (range.begin + c.row) * row_stride + c.col : g;
    CpAsync16(s_tile + SwizzledOffset<T::kRowBytes>(c.row, c.col), src, valid);
  }
}

// Block (query tile blockIdx.x, head blockIdx.y); warp w owns query rows 16w..16w+15 of the tile.
// Q stays in registers; each main-loop step computes S = Q·Kᵀ for kBlockN keys, folds it into
// the running softmax, and accumulates P·V, while the next K/V tile streams into the other stage.
template <int kHeadDim>
__global__ void __launch_bounds__(Traits<kHeadDim>::kThreads, 1) FlashForwardKernel(const __grid_constant__ Params p) {
  using T = Traits<kHeadDim>;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, head = blockIdx.y;
  const Range qt = QueryTile<T>(blockIdx.x, p.nq);
  const uint16_t* g_q = static_cast<const uint16_t*>(p.q) + head * p.q_head;  // [nq, dh], row stride q_row
  const uint16_t* g_k = static_cast<const uint16_t*>(p.k) + head * p.k_head;  // [nk, dh]
  const uint16_t* g_v = static_cast<const uint16_t*>(p.v) + head * p.v_head;  // [nk, dh]
  const uint32_t s_q = SmemAddress(smem);                                     // [kBlockM, dh]
  const uint32_t s_k = s_q + T::kQBytes;                                      // [kStages][kBlockN, dh]
  const uint32_t s_v = s_k + T::kStages * T::kKVTileBytes;                    // [kStages][kBlockN, dh]
  const int n_tiles = KeyTileCount<T>(p.nk);

  LoadTile<T, T::kBlockM>(s_q, g_q, p.q_row, qt, tid);
  LoadTile<T, T::kBlockN>(s_k, g_k, p.k_row, KeyTile<T>(0, p.nk), tid);
  LoadTile<T, T::kBlockN>(s_v, g_v, p.v_row, KeyTile<T>(0, p.nk), tid);
  CpAsyncCommit();
  CpAsyncWaitAll();
  __syncthreads();

  uint32_t r_q[T::kQkSteps][4];  // A fragments of this warp's 16 rows, all of dh
  const RowCol qa = LdmatrixA(lane);
#pragma unroll
  for (int ks = 0; ks < T::kQkSteps; ++ks) {
    Ldmatrix(r_q[ks], s_q + SwizzledOffset<T::kRowBytes>(warp * 16 + qa.row, ks * 16 + qa.col));
  }

  float r_o[T::kOTiles][4] = {};  // O accumulators [16, dh]
  SoftmaxState<T> st;
  const RowCol kb = LdmatrixK(lane), vb = LdmatrixV(lane);

  for (int kt = 0; kt < n_tiles; ++kt) {
    if (kt > 0) {
      CpAsyncWaitAll();  // tile kt has landed (this thread's copies) ...
      __syncthreads();   // ... everyone's, and every warp is done with tile kt − 1's stage
    }
    if (kt + 1 < n_tiles) {
      const int stage = (kt + 1) % T::kStages;
      const Range next = KeyTile<T>(kt + 1, p.nk);
      LoadTile<T, T::kBlockN>(s_k + stage * T::kKVTileBytes, g_k, p.k_row, next, tid);
      LoadTile<T, T::kBlockN>(s_v + stage * T::kKVTileBytes, g_v, p.v_row, next, tid);
      CpAsyncCommit();
    }
    const uint32_t s_kt = s_k + (kt % T::kStages) * T::kKVTileBytes;
    const uint32_t s_vt = s_v + (kt % T::kStages) * T::kKVTileBytes;

    float r_s[T::kSTiles][4] = {};  // S [16, kBlockN]
#pragma unroll
    for (int ks = 0; ks < T::kQkSteps; ++ks) {
#pragma unroll
      for (int nt2 = 0; nt2 < T::kSTiles / 2; ++nt2) {
        uint32_t b[4];
        Ldmatrix(b, s_kt + SwizzledOffset<T::kRowBytes>(nt2 * 16 + kb.row, ks * 16 + kb.col));
        Mma(r_s[2 * nt2], r_q[ks], b[0], b[1]);
        Mma(r_s[2 * nt2 + 1], r_q[ks], b[2], b[3]);
      }
    }

    const Range kr = KeyTile<T>(kt, p.nk);
    if (kr.rows < T::kBlockN) MaskKeys<T>(r_s, lane, kr.begin, p.nk);
    float tile_max[2];
    RowMax<T>(r_s, tile_max);
    tile_max[0] = QuadMax(tile_max[0]);
    tile_max[1] = QuadMax(tile_max[1]);
    SoftmaxStep<T>(r_s, r_o, st, tile_max, p.scale_log2);

#pragma unroll
    for (int kk = 0; kk < T::kPvSteps; ++kk) {
      uint32_t a[4];
      PackP<T>(r_s, kk, a);
#pragma unroll
      for (int dt2 = 0; dt2 < T::kOTiles / 2; ++dt2) {
        uint32_t b[4];
        LdmatrixTrans(b, s_vt + SwizzledOffset<T::kRowBytes>(kk * 16 + vb.row, dt2 * 16 + vb.col));
        Mma(r_o[2 * dt2], a, b[0], b[1]);
        Mma(r_o[2 * dt2 + 1], a, b[2], b[3]);
      }
    }
  }

  const float inv[2] = {InverseSum(QuadSum(st.sum[0])), InverseSum(QuadSum(st.sum[1]))};
  float* g_o = p.o + head * p.o_head;  // [nq, dh], row stride o_row
#pragma unroll
  for (int dt = 0; dt < T::kOTiles; ++dt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const RowCol rc = FragC(lane, 2 * h);  // elements 2h, 2h + 1: one row, two adjacent columns
      const int row = qt.begin + warp * 16 + rc.row;
      if (row < p.nq) {
        *reinterpret_cast<float2*>(g_o + row * p.o_row + dt * 8 + rc.col) =
            make_float2(r_o[dt][2 * h] * inv[h], r_o[dt][2 * h + 1] * inv[h]);
      }
    }
  }
}

template <int kHeadDim>
Status Launch(const Params& p, cudaStream_t stream) {
  using T = Traits<kHeadDim>;
  DS_CUDA_TRY(
      cudaFuncSetAttribute(FlashForwardKernel<kHeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes));
  const dim3 grid(static_cast<unsigned>(CeilDiv(p.nq, T::kBlockM)), static_cast<unsigned>(p.heads));
  FlashForwardKernel<kHeadDim><<<grid, T::kThreads, T::kSmemBytes, stream>>>(p);
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

bool Aligned(const void* ptr, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % static_cast<uintptr_t>(bytes) == 0;
}

}  // namespace

Status CheckKernelImage() {
  cudaFuncAttributes attributes;
  const cudaError_t e = cudaFuncGetAttributes(&attributes, FlashForwardKernel<64>);
  if (e == cudaSuccess) return Status::Ok();
  cudaGetLastError();
  return Status(Code::kUnsupported, std::string("no kernel image for this GPU in the build (built for ") +
                                        DS_CUDA_ARCHS + "): " + cudaGetErrorString(e));
}

bool SupportsHeadDim(int head_dim) { return head_dim == 32 || head_dim == 64 || head_dim == 128; }

Status Check(const Params& p, int head_dim) {
  if (!SupportsHeadDim(head_dim)) {
    return Status(Code::kUnsupported,
                  "flash attention: head dim " + std::to_string(head_dim) + " (supported: 32, 64, 128)");
  }
  const bool inputs = Aligned(p.q, 16) && Aligned(p.k, 16) && Aligned(p.v, 16) && p.q_row % 8 == 0 &&
                      p.q_head % 8 == 0 && p.k_row % 8 == 0 && p.k_head % 8 == 0 && p.v_row % 8 == 0 &&
                      p.v_head % 8 == 0;
  const bool output = Aligned(p.o, 8) && p.o_row % 2 == 0 && p.o_head % 2 == 0;
  if (!inputs || !output) {
    return Status(Code::kInvalidArgument,
                  "flash attention: q/k/v rows must be 16-byte aligned and o rows 8-byte aligned (element strides "
                  "row/head: q " +
                      std::to_string(p.q_row) + "/" + std::to_string(p.q_head) + ", k " + std::to_string(p.k_row) +
                      "/" + std::to_string(p.k_head) + ", v " + std::to_string(p.v_row) + "/" +
                      std::to_string(p.v_head) + ", o " + std::to_string(p.o_row) + "/" + std::to_string(p.o_head) +
                      ")");
  }
  if (p.nq <= 0 || p.nk <= 0 || p.heads <= 0 || p.heads > 65535) {
    return Status(Code::kInvalidArgument, "flash attention: nq " + std::to_string(p.nq) + " nk " +
                                              std::to_string(p.nk) + " heads " + std::to_string(p.heads));
  }
  return Status::Ok();
}

Status Forward(const Params& p, int head_dim, cudaStream_t stream) {
  DS_TRY(Check(p, head_dim));
  switch (head_dim) {
    case 32:
      return Launch<32>(p, stream);
    case 64:
      return Launch<64>(p, stream);
    default:
      return Launch<128>(p, stream);
  }
}

}  // namespace ds::cuda::flash
