#include "kernels/cuda/attention/flash_hopper.cuh"

#include <cuda.h>  // CUtensorMap and the cuTensorMapEncodeTiled types (the entry point comes from the runtime)

#include <cstdint>

#include "kernels/cuda/attention/flash_device.cuh"
#include "kernels/cuda/attention/hopper_layout.h"
#include "kernels/cuda/cuda_check.h"

// wgmma exists on sm_90a only: the kernel body is compiled for that target and is empty in the
// other images (Runnable keeps it from being launched there).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DS_WGMMA 1
#else
#define DS_WGMMA 0
#endif

namespace ds::cuda::flash::hopper {
namespace {

// ---- PTX wrappers ----------------------------------------------------------------------------------

#if DS_WGMMA
// cp.async writes shared memory through the generic proxy, wgmma reads it through the async proxy:
// each writer fences its own completed copies before the barrier that publishes them.
__device__ __forceinline__ void FenceProxyAsync() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Orders this thread's earlier register accesses (accumulators, A fragments) before the wgmmas
// that follow.
__device__ __forceinline__ void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void WgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most kPending of this warpgroup's committed wgmma groups are still running.
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
__device__ __forceinline__ void WgmmaWaitAll() { WgmmaWait<0>(); }

// The accumulators of an asynchronous wgmma are written after the instruction issues: this empty
// asm, around the issue and after the wait, keeps the compiler from moving reads of them (or
// copies of them into other registers) across.
template <int kTiles>
__device__ __forceinline__ void PinRegisters(float (&d)[kTiles][4]) {
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) asm volatile("" : "+f"(d[nt][i])::"memory");
  }
}
// The same for A fragments in registers (P), which a P·V in flight reads: packing the next P must
// stay after the wait for that P·V and before the fence that precedes its own P·V.
template <int kSteps>
__device__ __forceinline__ void PinRegisters(uint32_t (&a)[kSteps][4]) {
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk) {
#pragma unroll
    for (int i = 0; i < 4; ++i) asm volatile("" : "+r"(a[kk][i])::"memory");
  }
}

#define DS_ACC4(n) "+f"(d[n][0]), "+f"(d[n][1]), "+f"(d[n][2]), "+f"(d[n][3])
#define DS_ACC64                                                                                              \
  DS_ACC4(0), DS_ACC4(1), DS_ACC4(2), DS_ACC4(3), DS_ACC4(4), DS_ACC4(5), DS_ACC4(6), DS_ACC4(7), DS_ACC4(8), \
      DS_ACC4(9), DS_ACC4(10), DS_ACC4(11), DS_ACC4(12), DS_ACC4(13), DS_ACC4(14), DS_ACC4(15)
#define DS_ACC88 DS_ACC64, DS_ACC4(16), DS_ACC4(17), DS_ACC4(18), DS_ACC4(19), DS_ACC4(20), DS_ACC4(21)

// d (+)= A·B, m64n<8·kTiles>k16 (n128: S of a 128-key tile; n176: of a 176-key one), bf16 in,
// f32 accumulators; A and B from shared memory through their descriptors (both K-major: no
// transpose), scale_d = 0 ignores d's old value.
template <int kTiles>
__device__ __forceinline__ void WgmmaSS(float (&d)[kTiles][4], uint64_t a, uint64_t b, int scale_d) {
  static_assert(kTiles == 16 || kTiles == 22, "the shapes written out: n128, n176");
  if constexpr (kTiles == 16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
        ", %64, %65, p, 1, 1, 0, 0;\n"
        "}\n"
        : DS_ACC64
        : "l"(a), "l"(b), "r"(scale_d));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %90, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n176k16.f32.bf16.bf16 "
        "{"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87}"
        ", %88, %89, p, 1, 1, 0, 0;\n"
        "}\n"
        : DS_ACC88
        : "l"(a), "l"(b), "r"(scale_d));
  }
}

// d += A·B, m64n128k16, A from registers (the m16n8k16 A fragment per warp), B from shared memory:
// K-major (Vᵀ), or MN-major with kTransB (V as stored; the instruction's imm-trans-b).
template <bool kTransB>
__device__ __forceinline__ void WgmmaRS(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
      ", {%64, %65, %66, %67}, %68, 1, 1, 1, %69;\n"
      : DS_ACC64
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(kTransB ? 1 : 0));
}

#undef DS_ACC88
#undef DS_ACC64
#undef DS_ACC4

// mbarriers (PTX ISA "Parallel Synchronization and Communication Instructions: mbarrier").
__device__ __forceinline__ void MbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the async proxy (the TMA's complete_tx) and the
// other threads (after the block barrier that follows).
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The producer's arrival on a "full" barrier, announcing the bytes its copies will complete.
__device__ __forceinline__ void MbarArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Spins until the phase of parity `parity` has completed. Each try_wait may suspend the thread for
// a while before it answers false; after 2^30 such answers (seconds at the least, far beyond any
// real wait) the protocol is broken (a count or a parity wrong), and the kernel traps: the launch
// then fails with an error the backend reports, instead of hanging the process that waits for it.
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done, stuck;\n"
      ".reg .u32 tries;\n"
      "mov.u32 tries, 0;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@done bra DONE;\n"
      "add.u32 tries, tries, 1;\n"
      "setp.ge.u32 stuck, tries, 1073741824;\n"
      "@stuck trap;\n"
      "bra WAIT;\n"
      "DONE:\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// One TMA box (global → shared, completing its bytes on mbarrier `bar`); `map` is the tensor map
// in the kernel's parameter space.
__device__ __forceinline__ void TmaLoad3(uint32_t dst, const CUtensorMap* map, TmaCoords c, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c.c0), "r"(c.c1), "r"(c.c2), "r"(bar)
      : "memory");
}

// Named barriers 1 and 2 between the two consumer warpgroups (0 is __syncthreads').
__device__ __forceinline__ void NamedBarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void NamedBarrierArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// The warpgroup's register budget from here on (sm_90a; the kernel's launch bounds cap it at
// entry): raised for the consumers, lowered for the producer.
template <bool kIncrease, int kRegisters>
__device__ __forceinline__ void SetMaxRegisters() {
  static_assert(kRegisters % 8 == 0 && kRegisters >= 24 && kRegisters <= 256, "setmaxnreg's range");
  if constexpr (kIncrease) {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
  } else {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
  }
}

// A [kRows, kCols] bf16 tile (g: its row 0, rows `row_stride` elements apart; `rows` × `cols`
// valid) into its swizzled K-major place at `s_tile`; chunks outside the valid part are zero-filled.
template <class T, int kRows, int kCols>
__device__ __forceinline__ void LoadTile(uint32_t s_tile, const uint16_t* g, int64_t row_stride, int rows, int cols,
                                         int tid) {
  using Copy = TileCopy<T, kRows, kCols>;
  const Chunk c = Copy::At(tid, 0);
  const uint16_t* src = g + c.row * row_stride + c.col;
  const uint32_t dst = s_tile + Sw128Offset(kRows, c.row, c.col);
#pragma unroll
  for (int it = 0; it < Copy::kIters; ++it) {
    const bool valid = c.row + it * Copy::kRowsPerIter < rows && c.col < cols;
    CpAsync16(dst + it * Copy::kRowsPerIter * kSwizzleRowBytes, valid ? src : g, valid);
    src += Copy::kRowsPerIter * row_stride;
  }
}
#endif  // DS_WGMMA

// ---- the kernels -------------------------------------------------------------------------------------

#if DS_WGMMA
// One warpgroup's share of a block: 64 query rows, their S and O accumulators, P as A fragments
// and the online softmax state; the GEMMs it enqueues read Q, K and Vᵀ through descriptors off
// one base (the aligned shared-memory base: every operand offset is an immediate).
template <class T>
struct Warpgroup {
  float r_o[T::kOTiles][4] = {};
  float r_s[T::kSTiles][4];
  uint32_t r_p[T::kPvSteps][4];  // P of a tile as the A operand of its P·V
  SoftmaxState st;
  int wg;    // which 64 rows of the block's query tile
  int lane;  // in the warp

  // Enqueue S = Q·K(kt)ᵀ, then O += P·V(tile), as one wgmma group each.
  __device__ __forceinline__ void IssueS(uint64_t desc, int kt) {
    const uint32_t k_slot = KSlot<T>(kt) - KSlot<T>(0);
#pragma unroll
    for (int ks = 0; ks < T::kQkSteps; ++ks) {
      WgmmaSS(r_s, DescriptorAt(desc, QOperand<T>(wg, ks)), DescriptorAt(desc, k_slot + KOperand<T>(0, ks)), ks > 0);
    }
    WgmmaCommit();
  }
  __device__ __forceinline__ void IssuePv(uint64_t desc, int tile) {
    const uint32_t vt_slot = VtSlot<T>(tile) - VtSlot<T>(0);
#pragma unroll
    for (int kk = 0; kk < T::kPvSteps; ++kk) {
      WgmmaRS<T::kVMnMajor>(r_o, r_p[kk], VtDescriptorAt<T>(desc, vt_slot + VtOperand<T>(0, kk)));
    }
    WgmmaCommit();
  }
  // The issues with the register pins and the fence that order the accumulators and P before
  // them: S(kt) alone, P(tile)·V(tile) alone, and the pipelined step's S(kt) then
  // P(kt − 1)·V(kt − 1).
  __device__ __forceinline__ void FencedIssueS(uint64_t desc, int kt) {
    PinRegisters(r_s);
    WgmmaFence();
    IssueS(desc, kt);
  }
  __device__ __forceinline__ void FencedIssuePv(uint64_t desc, int tile) {
    PinRegisters(r_p);
    PinRegisters(r_o);
    WgmmaFence();
    IssuePv(desc, tile);
  }
  __device__ __forceinline__ void IssueSThenPv(uint64_t desc, int kt) {
    PinRegisters(r_s);
    PinRegisters(r_p);
    PinRegisters(r_o);
    WgmmaFence();
    IssueS(desc, kt);
    IssuePv(desc, kt - 1);
  }
  // The online softmax of tile kt's scores (complete in r_s): the running max and sums move, the
  // scores become P in place (f32), `alpha` rescales O.
  __device__ __forceinline__ void Softmax(const Params& p, int kt, float (&alpha)[2]) {
    const Range kr = KeyTile<T>(kt, p.nk);
    if (kr.rows < T::kBlockN) MaskKeys<T>(r_s, lane, kr.begin, p.nk);
    float tile_max[2], ref[2];
    RowMax<T>(r_s, tile_max);
    tile_max[0] = QuadMax(tile_max[0]);
    tile_max[1] = QuadMax(tile_max[1]);
    MoveMax(st, tile_max, p.scale_log2, alpha, ref);
    ExpScores<T>(r_s, st, ref, p.scale_log2);
  }
  __device__ __forceinline__ void PackAll() {
#pragma unroll
    for (int kk = 0; kk < T::kPvSteps; ++kk) PackP<T>(r_s, kk, r_p[kk]);
  }
  // O / the row sums into the output rows of this warpgroup; ct: the thread among the block's
  // consumer threads (OutputRow), row0: the query tile's first row.
  template <bool kBf16Out>
  __device__ __forceinline__ void Store(const Params& p, int head, int row0, int ct) {
    auto* g_o = OutputBase<kBf16Out>(p, head);
    const float inv[2] = {InverseSum(QuadSum(st.sum[0])), InverseSum(QuadSum(st.sum[1]))};
#pragma unroll
    for (int nt = 0; nt < T::kOTiles; ++nt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = row0 + OutputRow<T>(ct, h);
        if (row < p.nq) {
          StorePair(g_o + row * p.o_row + Accumulator(ct % 128, nt, 2 * h).col, r_o[nt][2 * h] * inv[h],
                    r_o[nt][2 * h + 1] * inv[h]);
        }
      }
    }
  }
};

// The descriptors are immediates off one base descriptor, made opaque per step: otherwise the
// compiler hoists the loop-invariant Q ones and each holds two registers through the loop.
__device__ __forceinline__ uint64_t StepDescriptor(uint64_t base_desc) {
  uint64_t desc = base_desc;
  asm volatile("" : "+l"(desc));
  return desc;
}
#endif  // DS_WGMMA

// Block (query tile blockIdx.x, head blockIdx.y). Warpgroup wg computes query rows [64·wg, …) of
// the tile; per key tile: S = Q·Kᵀ (kQkSteps wgmmas from shared memory), the online softmax in
// registers, O += P·V (kPvSteps wgmmas, P from registers, Vᵀ from shared memory), while the next
// K/Vᵀ tile streams into a free slot of the ring (the other of two in the serial variant; the
// pipelined one below keeps three). The one barrier per step publishes the landed tile and tells
// every warpgroup's wgmmas on the tile the refill replaces are complete (each waits for its own
// before arriving). nk ≥ 1 (Check), so there is at least one key tile.
template <class T, bool kBf16Out>
__global__ void __launch_bounds__(T::kThreads, 1) HopperForwardKernel(const __grid_constant__ Params p) {
  static_assert(T::kBlockN == 128 && T::kHeadDim == 128, "WgmmaSS/WgmmaRS are the m64n128k16 shapes");
  static_assert(!T::kProducer, "HopperTmaKernel");
#if DS_WGMMA
  extern __shared__ __align__(1024) unsigned char smem[];
  const int tid = threadIdx.x, head = blockIdx.y;
  const uint32_t raw = SmemAddress(smem);
  const uint32_t base = (raw + 1023u) & ~1023u;  // the swizzle period (kSmemAlloc has the room)
  const uint64_t base_desc = Descriptor(base);
  const Range qt = QueryTile<T>(blockIdx.x, p.nq);
  const int64_t vt_row = VtRow(p.nk);
  const uint16_t* g_q = static_cast<const uint16_t*>(p.q) + head * p.q_head + qt.begin * p.q_row;
  const uint16_t* g_k = static_cast<const uint16_t*>(p.k) + head * p.k_head;
  const uint16_t* g_vt = static_cast<const uint16_t*>(p.v_t) + head * T::kHeadDim * vt_row;
  const int n_tiles = KeyTileCount<T>(p.nk);
  auto load_kv = [&](int tile) {
    const Range keys = KeyTile<T>(tile, p.nk);
    LoadTile<T, T::kBlockN, T::kHeadDim>(base + KSlot<T>(tile), g_k + keys.begin * p.k_row, p.k_row, keys.rows,
                                         T::kHeadDim, tid);
    LoadTile<T, T::kHeadDim, T::kBlockN>(base + VtSlot<T>(tile), g_vt + keys.begin, vt_row, T::kHeadDim, keys.rows,
                                         tid);
  };

  LoadTile<T, T::kBlockM, T::kHeadDim>(base, g_q, p.q_row, qt.rows, T::kHeadDim, tid);
  load_kv(0);
  CpAsyncCommit();

  Warpgroup<T> w;
  w.wg = tid / 128;
  w.lane = tid % 32;

  // Step kt's barrier: tile kt (this thread's copies) has landed and is visible to wgmma (the
  // proxy fence), everyone's has, and every warpgroup is done with the wgmmas that read the slot
  // the next tile takes; then that tile's copies go out.
  auto next_tile = [&](int kt) {
    CpAsyncWait<0>();
    FenceProxyAsync();
    __syncthreads();
    if (kt + 1 < n_tiles) load_kv(kt + 1);
    CpAsyncCommit();
  };

  if constexpr (!T::kOverlap) {
    // Each step in sequence: S, softmax, P·V. The other warpgroup's GEMMs keep the tensor cores
    // busy while this one runs its softmax, as far as the per-step barrier lets them drift.
    for (int kt = 0; kt < n_tiles; ++kt) {
      next_tile(kt);
      const uint64_t desc = StepDescriptor(base_desc);
      w.FencedIssueS(desc, kt);
      WgmmaWaitAll();
      PinRegisters(w.r_s);
      float alpha[2];
      w.Softmax(p, kt, alpha);
      RescaleO<T>(w.r_o, alpha);
      w.PackAll();
      w.FencedIssuePv(desc, kt);
      WgmmaWaitAll();
      PinRegisters(w.r_o);
    }
  } else {
    // FlashAttention-3's intra-warpgroup pipelining: step kt enqueues S(kt) and then P(kt − 1)·V(kt − 1),
    // and runs the softmax of S(kt) while that P·V occupies the tensor cores; O is rescaled to
    // tile kt's max once the P·V has landed. The ring has three slots: tile kt + 1 loads into the
    // slot of tile kt − 2, whose last reader (the P·V of step kt − 1) every warpgroup has waited for
    // before the step's barrier, while V(kt − 1) and K(kt) stay.
    next_tile(0);
    w.FencedIssueS(StepDescriptor(base_desc), 0);
    WgmmaWaitAll();
    PinRegisters(w.r_s);
    float alpha[2];
    w.Softmax(p, 0, alpha);  // O is still zero: nothing to rescale
    w.PackAll();
    for (int kt = 1; kt < n_tiles; ++kt) {
      next_tile(kt);
      w.IssueSThenPv(StepDescriptor(base_desc), kt);
      WgmmaWait<1>();  // S(kt) has landed; the P·V may still run
      PinRegisters(w.r_s);
      w.Softmax(p, kt, alpha);
      WgmmaWait<0>();  // P(kt − 1)·V(kt − 1) has landed: r_o complete, r_p free
      PinRegisters(w.r_o);
      PinRegisters(w.r_p);
      PinRegisters(w.r_s);
      RescaleO<T>(w.r_o, alpha);
      w.PackAll();
    }
    w.FencedIssuePv(StepDescriptor(base_desc), n_tiles - 1);
    WgmmaWait<0>();
    PinRegisters(w.r_o);
  }
  w.template Store<kBf16Out>(p, head, qt.begin, tid);
#elif defined(__CUDA_ARCH__)
  __trap();  // an image without wgmma: Runnable keeps this from launching; never return unwritten O
#endif  // DS_WGMMA
}

// The warp specialisation's registers per thread: the producer's one copying thread needs few.
constexpr int kProducerRegisters = 24, kConsumerRegisters = 240;

// The tensor maps of the TMA kernel, passed by value as a __grid_constant__ parameter (the TMA
// reads them from the parameter space).
struct TmaMaps {
  CUtensorMap q, k, vt;  // vt: Vᵀ, or with Traits::kVMnMajor V as stored (a token tensor like k)
  bool q_heads_inner, k_heads_inner, v_heads_inner;  // TokenTensor's order of the token tensors' dimensions
};

// The warp-specialised kernel (Traits::kProducer): warpgroup 0 is the producer, of which one thread
// issues every copy: Q once, then K and Vᵀ tiles into their rings in TmaRing::ProducerCopy's
// order, each refill after the consumers released the slot. Warpgroups 1 and 2 are the consumers, pipelined as the
// kOverlap kernel above, but each waits only for the slots it reads and releases each as soon as
// its last wgmma on it has landed (K after S, Vᵀ after P·V), so neither waits for the other except
// for its turn: two named barriers hand the tensor cores from one consumer to the other at every
// issue point (FlashAttention-3's ping-pong), so one's softmax runs under the other's GEMMs.
// setmaxnreg moves registers from the producer (24) to the consumers (240).
template <class T, bool kBf16Out>
__global__ void __launch_bounds__(T::kThreads, 1)
    HopperTmaKernel(const __grid_constant__ Params p, const __grid_constant__ TmaMaps maps) {
  static_assert((T::kBlockN == 128 || T::kBlockN == 176) && T::kHeadDim == 128,
                "WgmmaSS's m64n128k16 / m64n176k16 and WgmmaRS's m64n128k16");
  static_assert(T::kProducer, "HopperForwardKernel");
  // setmaxnreg.inc blocks until the block's pool has the registers: what the producer gives back
  // (from the 168 per thread that __launch_bounds__(384, 1) leaves: 65536 / 384 rounded down to
  // 8) must cover what the consumers take, or the kernel hangs instead of failing.
  static_assert(T::kThreads == 384 && 128 * kProducerRegisters + 256 * kConsumerRegisters <= 168 * 384,
                "the register budget of the warp specialisation");
#if DS_WGMMA
  using Ring = TmaRing<T>;
  extern __shared__ __align__(1024) unsigned char smem[];
  const int tid = threadIdx.x, head = blockIdx.y;
  const uint32_t raw = SmemAddress(smem);
  const uint32_t base = (raw + 1023u) & ~1023u;  // the swizzle period (kSmemAlloc has the room)
  const Range qt = QueryTile<T>(blockIdx.x, p.nq);
  const int n_tiles = KeyTileCount<T>(p.nk);
  auto barrier = [&](int index) { return base + Ring::Barrier(index); };

  if (tid == 0) {
    MbarInit(barrier(Ring::kQFull), 1);
    for (int s = 0; s < T::kStages; ++s) {
      MbarInit(barrier(Ring::FullK(s)), 1);
      MbarInit(barrier(Ring::FullVt(s)), 1);
      MbarInit(barrier(Ring::EmptyK(s)), Ring::kConsumerWarps);
      MbarInit(barrier(Ring::EmptyVt(s)), Ring::kConsumerWarps);
    }
    FenceBarrierInit();
  }
  __syncthreads();

  if (tid < 128) {
    // The producer. Boxes are 64 columns wide: a tile is kHeadDim / 64 (Q, K, and V with
    // kVMnMajor) or kVtCols / 64 (Vᵀ) of them, one swizzle atom each.
    SetMaxRegisters<false, kProducerRegisters>();
    if (tid == 0) {
      constexpr int kDimAtoms = T::kHeadDim / 64, kVtAtoms = T::kVtCols / 64;
      // Rows [row0, row0 + rows) of a token tensor (Q, K, or V with kVMnMajor) into the tile at
      // `dst`: one box per 64 dims.
      auto load_token_tile = [&](uint32_t dst, int rows, const CUtensorMap* map, bool heads_inner, int row0,
                                 uint32_t bar) {
        for (int a = 0; a < kDimAtoms; ++a) {
          TmaLoad3(dst + static_cast<uint32_t>(a * rows * 128), map, TokenCoords(heads_inner, 64 * a, row0, head), bar);
        }
      };
      MbarArriveExpectTx(barrier(Ring::kQFull), T::kQBytes);
      load_token_tile(base, T::kBlockM, &maps.q, maps.q_heads_inner, qt.begin, barrier(Ring::kQFull));
      for (int i = 0; i < 2 * n_tiles; ++i) {
        const typename Ring::Copy copy = Ring::ProducerCopy(i, n_tiles);
        const int kt = copy.tile, slot = Ring::Slot(kt), key0 = kt * T::kBlockN;
        if (!copy.vt) {
          if (Ring::RefillWaits(kt)) MbarWait(barrier(Ring::EmptyK(slot)), Ring::EmptyParity(kt));
          MbarArriveExpectTx(barrier(Ring::FullK(slot)), T::kKBytes);
          load_token_tile(base + KSlot<T>(kt), T::kBlockN, &maps.k, maps.k_heads_inner, key0,
                          barrier(Ring::FullK(slot)));
        } else {
          if (Ring::RefillWaits(kt)) MbarWait(barrier(Ring::EmptyVt(slot)), Ring::EmptyParity(kt));
          MbarArriveExpectTx(barrier(Ring::FullVt(slot)), T::kVtBytes);
          if constexpr (T::kVMnMajor) {  // V's rows, boxed as K's
            load_token_tile(base + VtSlot<T>(kt), T::kBlockN, &maps.vt, maps.v_heads_inner, key0,
                            barrier(Ring::FullVt(slot)));
          } else {
            for (int a = 0; a < kVtAtoms; ++a) {
              TmaLoad3(base + VtSlot<T>(kt) + static_cast<uint32_t>(a * T::kHeadDim * 128), &maps.vt,
                       TmaCoords{key0 + 64 * a, 0, head}, barrier(Ring::FullVt(slot)));
            }
          }
        }
      }
    }
  } else {
    SetMaxRegisters<true, kConsumerRegisters>();
    const int t = tid - 128;
    Warpgroup<T> w;
    w.wg = t / 128;
    w.lane = t % 32;
    const uint64_t base_desc = Descriptor(base);
    // The turns: consumer c waits at barrier 1 + c for its turn to issue and, having issued, gives
    // the other theirs. Consumer 0 goes first (consumer 1 arrives once up front); consumer 1 skips
    // its last hand-over, so each barrier sees as many arrivals as waits.
    constexpr int kTurnThreads = 256;
    const int my_turn = 1 + w.wg, other_turn = 2 - w.wg;
    int issues_left = n_tiles + 1;  // S(0); S(kt) with P·V(kt − 1) for kt ≥ 1; the last P·V
    auto take_turn = [&] { NamedBarrierSync(my_turn, kTurnThreads); };
    auto pass_turn = [&] {
      if (--issues_left > 0 || w.wg == 0) NamedBarrierArrive(other_turn, kTurnThreads);
    };
    auto release = [&](int index) {
      if (w.lane == 0) MbarArrive(barrier(index));
    };
    if (w.wg == 1) NamedBarrierArrive(other_turn, kTurnThreads);
    MbarWait(barrier(Ring::kQFull), 0);

    MbarWait(barrier(Ring::FullK(0)), 0);
    take_turn();
    w.FencedIssueS(StepDescriptor(base_desc), 0);
    pass_turn();
    WgmmaWaitAll();
    PinRegisters(w.r_s);
    release(Ring::EmptyK(0));
    float alpha[2];
    w.Softmax(p, 0, alpha);  // O is still zero: nothing to rescale
    w.PackAll();
    for (int kt = 1; kt < n_tiles; ++kt) {
      MbarWait(barrier(Ring::FullK(Ring::Slot(kt))), Ring::FullParity(kt));
      MbarWait(barrier(Ring::FullVt(Ring::Slot(kt - 1))), Ring::FullParity(kt - 1));
      const uint64_t desc = StepDescriptor(base_desc);
      take_turn();
      w.IssueSThenPv(desc, kt);
      pass_turn();
      WgmmaWait<1>();  // S(kt) has landed: K(kt) is free; the P·V may still run
      PinRegisters(w.r_s);
      release(Ring::EmptyK(Ring::Slot(kt)));
      w.Softmax(p, kt, alpha);
      WgmmaWait<0>();  // P(kt − 1)·V(kt − 1) has landed: r_o complete, r_p and Vᵀ(kt − 1) free
      PinRegisters(w.r_o);
      PinRegisters(w.r_p);
      PinRegisters(w.r_s);
      release(Ring::EmptyVt(Ring::Slot(kt - 1)));
      RescaleO<T>(w.r_o, alpha);
      w.PackAll();
    }
    MbarWait(barrier(Ring::FullVt(Ring::Slot(n_tiles - 1))), Ring::FullParity(n_tiles - 1));
    take_turn();
    w.FencedIssuePv(StepDescriptor(base_desc), n_tiles - 1);
    pass_turn();
    WgmmaWait<0>();
    PinRegisters(w.r_o);
    w.template Store<kBf16Out>(p, head, qt.begin, t);
  }
#elif defined(__CUDA_ARCH__)
  __trap();  // an image without wgmma: Runnable keeps this from launching; never return unwritten O
#endif  // DS_WGMMA
}

// Vᵀ for the kernel: v [nk, heads, dh] (element strides v_row, v_head) → v_t [heads, dh, vt_row],
// keys nk … vt_row − 1 zero. 32 × 32 tiles through shared memory (padded against bank conflicts).
constexpr int kTransposeTile = 32, kTransposeRows = 8;

__global__ void __launch_bounds__(kTransposeTile* kTransposeRows)
    TransposeVKernel(const uint16_t* v, int64_t v_row, int64_t v_head, int nk, int head_dim, int64_t vt_row,
                     uint16_t* v_t) {
  __shared__ uint16_t tile[kTransposeTile][kTransposeTile + 1];
  const int k0 = blockIdx.x * kTransposeTile, d0 = blockIdx.y * kTransposeTile, head = blockIdx.z;
  const uint16_t* src = v + head * v_head + d0 + threadIdx.x;
  for (int j = threadIdx.y; j < kTransposeTile; j += kTransposeRows) {
    const int key = k0 + j;
    tile[j][threadIdx.x] = key < nk ? src[key * v_row] : uint16_t{0};
  }
  __syncthreads();
  uint16_t* dst = v_t + (static_cast<int64_t>(head) * head_dim + d0) * vt_row + k0 + threadIdx.x;
  if (k0 + static_cast<int>(threadIdx.x) >= vt_row) return;
  for (int j = threadIdx.y; j < kTransposeTile; j += kTransposeRows) dst[j * vt_row] = tile[threadIdx.x][j];
}

Status TransposeV(const Params& p, int head_dim, cudaStream_t stream) {
  const int64_t vt_row = VtRow(p.nk);
  const dim3 grid(static_cast<unsigned>(CeilDiv(static_cast<int>(vt_row), kTransposeTile)),
                  static_cast<unsigned>(head_dim / kTransposeTile), static_cast<unsigned>(p.heads));
  TransposeVKernel<<<grid, dim3(kTransposeTile, kTransposeRows), 0, stream>>>(
      static_cast<const uint16_t*>(p.v), p.v_row, p.v_head, p.nk, head_dim, vt_row, static_cast<uint16_t*>(p.v_t));
  DS_CUDA_TRY_LAUNCH();
  return Status::Ok();
}

// cuTensorMapEncodeTiled, a driver function, through the runtime's entry-point query (no link
// to libcuda); null when the driver has none.
using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiled TensorMapEncoder() {
  static const EncodeTiled encoder = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return EncodeTiled{};
    }
    return reinterpret_cast<EncodeTiled>(fn);
  }();
  return encoder;
}

// The bf16 tensor t at `data` as a tensor map with 128-byte swizzled boxes (t TmaEncodable, data
// 16-byte aligned: Check). A driver without the encoder, or one refusing the map, is an error,
// not a reason to run something slower under this configuration's name.
Status EncodeTensorMap(CUtensorMap* map, const void* data, const TmaTensor& t, const char* what) {
  const EncodeTiled encode = TensorMapEncoder();
  if (encode == nullptr) {
    return Status(Code::kUnsupported, "flash attention (TMA): the driver has no cuTensorMapEncodeTiled");
  }
  const cuuint64_t dims[3] = {t.dims[0], t.dims[1], t.dims[2]};
  const cuuint64_t strides[2] = {t.strides[0], t.strides[1]};
  const cuuint32_t box[3] = {t.box[0], t.box[1], t.box[2]};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(data), dims, strides, box,
                            element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    return Status(Code::kInternal, std::string("flash attention (TMA): cuTensorMapEncodeTiled refused the ") + what +
                                       " tensor (CUresult " + std::to_string(static_cast<int>(r)) + ")");
  }
  return Status::Ok();
}

template <class T>
Status Launch(const Params& p, cudaStream_t stream) {
  if constexpr (!T::kProducer) {
    DS_TRY(TransposeV(p, T::kHeadDim, stream));
    return p.o_bf16
               ? LaunchFlashKernel(HopperForwardKernel<T, true>, T::kBlockM, T::kThreads, T::kSmemAlloc, p, stream)
               : LaunchFlashKernel(HopperForwardKernel<T, false>, T::kBlockM, T::kThreads, T::kSmemAlloc, p, stream);
  } else {
    const TmaTensor q = TokenTensor(p.nq, p.heads, T::kHeadDim, p.q_row, p.q_head, T::kBlockM);
    const TmaTensor k = TokenTensor(p.nk, p.heads, T::kHeadDim, p.k_row, p.k_head, T::kBlockN);
    const TmaTensor vt = T::kVMnMajor ? TokenTensor(p.nk, p.heads, T::kHeadDim, p.v_row, p.v_head, T::kBlockN)
                                      : VtTensor(VtRow(p.nk), p.heads, T::kHeadDim);
    if (!TmaEncodable(q) || !TmaEncodable(k) || !TmaEncodable(vt)) {
      // Strides the TMA cannot walk (heads overlapping inside a row): the pipelined cp.async
      // kernel reads any 16-byte rows, and Vᵀ (the scratch is the same for every wgmma
      // configuration, kVMnMajor ones included).
      DS_TRY(TransposeV(p, T::kHeadDim, stream));
      using CpAsync = Traits<T::kHeadDim, T::kWarpGroups, 128, true>;
      return p.o_bf16 ? LaunchFlashKernel(HopperForwardKernel<CpAsync, true>, CpAsync::kBlockM, CpAsync::kThreads,
                                          CpAsync::kSmemAlloc, p, stream)
                      : LaunchFlashKernel(HopperForwardKernel<CpAsync, false>, CpAsync::kBlockM, CpAsync::kThreads,
                                          CpAsync::kSmemAlloc, p, stream);
    }
    if constexpr (!T::kVMnMajor) DS_TRY(TransposeV(p, T::kHeadDim, stream));
    TmaMaps maps{};
    maps.q_heads_inner = q.heads_inner;
    maps.k_heads_inner = k.heads_inner;
    maps.v_heads_inner = vt.heads_inner;
    DS_TRY(EncodeTensorMap(&maps.q, p.q, q, "q"));
    DS_TRY(EncodeTensorMap(&maps.k, p.k, k, "k"));
    if constexpr (T::kVMnMajor) {
      DS_TRY(EncodeTensorMap(&maps.vt, p.v, vt, "v"));
    } else {
      DS_TRY(EncodeTensorMap(&maps.vt, p.v_t, vt, "Vt"));
    }
    auto kernel = p.o_bf16 ? HopperTmaKernel<T, true> : HopperTmaKernel<T, false>;
    DS_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemAlloc));
    const dim3 grid(static_cast<unsigned>(CeilDiv(p.nq, T::kBlockM)), static_cast<unsigned>(p.heads));
    kernel<<<grid, T::kThreads, T::kSmemAlloc, stream>>>(p, maps);
    DS_CUDA_TRY_LAUNCH();
    return Status::Ok();
  }
}

// Of the f32-output kernel (the bf16-output one differs only in its epilogue).
template <class T>
Result<KernelResources> QueryResources() {
  if constexpr (T::kProducer) {
    return FlashKernelResources(HopperTmaKernel<T, false>, T::kThreads, T::kSmemAlloc);
  } else {
    return FlashKernelResources(HopperForwardKernel<T, false>, T::kThreads, T::kSmemAlloc);
  }
}

template <int kHeadDim>
std::vector<detail::Entry> Build() {
  std::vector<detail::Entry> v;
  ForEachConfig(typename Candidates<kHeadDim>::List{}, [&]<class T>(int) {
    ConfigInfo info{HopperConfigName<T>(), T::kHeadDim,  T::kThreads / 32, 1, T::kBlockM, T::kBlockN, T::kStages, false,
                    T::kThreads,           T::kSmemAlloc};
    info.wgmma = true;
    info.tma = T::kProducer;
    v.push_back({info, &Launch<T>, &QueryResources<T>});
  });
  return v;
}

}  // namespace

int DefaultEntry(int head_dim) { return head_dim == 128 ? Candidates<128>::kDefault : -1; }

int CpAsyncDefaultEntry(int head_dim) { return head_dim == 128 ? Candidates<128>::kCpAsyncDefault : -1; }

const std::vector<detail::Entry>& Entries(int head_dim) {
  static const std::vector<detail::Entry> none, hd64 = Build<64>(), hd128 = Build<128>();
  switch (head_dim) {
    case 64:
      return hd64;
    case 128:
      return hd128;
    default:
      return none;
  }
}

}  // namespace ds::cuda::flash::hopper
