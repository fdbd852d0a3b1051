#include "kernels/cuda/attention/flash_attention.cuh"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/cuda/attention/flash_device.cuh"
#include "kernels/cuda/attention/flash_hopper.cuh"
#include "kernels/cuda/attention/hopper_layout.h"
#include "kernels/cuda/cuda_check.h"

#ifndef DS_CUDA_ARCHS
#define DS_CUDA_ARCHS "unrecorded architectures"
#endif

namespace ds::cuda::flash {
namespace {

// ---- PTX wrappers ----------------------------------------------------------------------------------

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

// ---- the kernel ------------------------------------------------------------------------------------

// Rows [range.begin, range.begin + kRows) of one head (g = that head's row 0) into a swizzled tile.
template <class T, int kRows>
__device__ __forceinline__ void LoadTile(uint32_t s_tile, const uint16_t* g, int64_t row_stride, Range range, int tid) {
  using Copy = TileCopy<T, kRows>;
  const Chunk c = Copy::At(tid, 0);
  const uint16_t* src = g + (range.begin + c.row) * row_stride + c.col;
  const uint32_t dst = s_tile + SwizzledOffset<T::kRowBytes>(c.row, c.col);
#pragma unroll
  for (int it = 0; it < Copy::kIters; ++it) {
    const bool valid = c.row + it * Copy::kRowsPerIter < range.rows;
    CpAsync16(dst + it * Copy::kRowsPerIter * T::kRowBytes, valid ? src : g, valid);
    src += Copy::kRowsPerIter * row_stride;
  }
}

// Block (query tile blockIdx.x, head blockIdx.y) of configuration T (flash_layout.h): warp w owns
// query rows [w·kRowsPerWarp, …) of the tile as kMTiles m16 row tiles. Each main-loop step computes
// S = Q·Kᵀ for kBlockN keys, folds it into the running softmax and accumulates P·V, while later
// K/V tiles stream into the other slots of the ring (see "the K/V pipeline" in flash_layout.h).
template <class T, bool kBf16Out>
__global__ void __launch_bounds__(T::kThreads, 1) FlashForwardKernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, head = blockIdx.y;
  const Range qt = QueryTile<T>(blockIdx.x, p.nq);
  const uint16_t* g_q = static_cast<const uint16_t*>(p.q) + head * p.q_head;  // [nq, dh], row stride q_row
  const uint16_t* g_k = static_cast<const uint16_t*>(p.k) + head * p.k_head;  // [nk, dh]
  const uint16_t* g_v = static_cast<const uint16_t*>(p.v) + head * p.v_head;  // [nk, dh]
  const uint32_t s_q = SmemAddress(smem);  // Q [kBlockM, dh], then K and V [kStages][kBlockN, dh]
  const int n_tiles = KeyTileCount<T>(p.nk);
  auto load_kv = [&](int tile) {
    if (tile >= n_tiles) return;
    const Range keys = KeyTile<T>(tile, p.nk);
    LoadTile<T, T::kBlockN>(s_q + T::kKOffset + KVSlotOffset<T>(tile), g_k, p.k_row, keys, tid);
    LoadTile<T, T::kBlockN>(s_q + T::kVOffset + KVSlotOffset<T>(tile), g_v, p.v_row, keys, tid);
  };

  LoadTile<T, T::kBlockM>(s_q, g_q, p.q_row, qt, tid);
#pragma unroll
  for (int tile = 0; tile < T::kStages - 1; ++tile) {
    load_kv(tile);
    CpAsyncCommit();
  }
  CpAsyncWait<T::kGroupsInFlight>();
  __syncthreads();

  // Shared-memory addresses are offsets from smem (tiles at multiples of 256 bytes: BlockAddress).
  const RowCol kb = LdmatrixK(lane), vb = LdmatrixV(lane);
  const uint32_t q_lane = QLaneBase<T>(0, LdmatrixA(lane), warp);
  // A fragments of this warp's rows, all of dh, when Q lives in registers (else unused).
  uint32_t r_q[T::kQInRegs ? T::kMTiles : 1][T::kQInRegs ? T::kQkSteps : 1][4];
  if constexpr (T::kQInRegs) {
#pragma unroll
    for (int mt = 0; mt < T::kMTiles; ++mt) {
#pragma unroll
      for (int ks = 0; ks < T::kQkSteps; ++ks) Ldmatrix(r_q[mt][ks], s_q + BlockAddress<T>(q_lane, mt, ks));
    }
  }

  float r_o[T::kMTiles][T::kOTiles][4] = {};  // O accumulators [16, dh] per row tile
  SoftmaxState st[T::kMTiles];

  for (int kt = 0; kt < n_tiles; ++kt) {
    if (kt > 0) {
      CpAsyncWait<T::kGroupsInFlight>();  // tile kt has landed (this thread's copies) ...
      __syncthreads();                    // ... everyone's, and every warp is done with step kt − 1
    }
    load_kv(PrefetchTile<T>(kt));
    CpAsyncCommit();
    const uint32_t k_lane = KLaneBase<T>(T::kKOffset + KVSlotOffset<T>(kt), kb);
    const uint32_t v_lane = VLaneBase<T>(T::kVOffset + KVSlotOffset<T>(kt), vb);
    // Q from shared memory: the base is made opaque per step, else the compiler hoists the
    // kQkSteps · kMTiles addresses derived from it and each holds a register through the loop.
    uint32_t q_lane_kt = q_lane;
    if constexpr (!T::kQInRegs) asm volatile("" : "+r"(q_lane_kt));

    float r_s[T::kMTiles][T::kSTiles][4] = {};  // S [16, kBlockN] per row tile
#pragma unroll
    for (int ks = 0; ks < T::kQkSteps; ++ks) {
      uint32_t a[T::kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < T::kMTiles; ++mt) {
        if constexpr (T::kQInRegs) {
#pragma unroll
          for (int r = 0; r < 4; ++r) a[mt][r] = r_q[mt][ks][r];
        } else {
          Ldmatrix(a[mt], s_q + BlockAddress<T>(q_lane_kt, mt, ks));
        }
      }
#pragma unroll
      for (int nt2 = 0; nt2 < T::kSTiles / 2; ++nt2) {
        uint32_t b[4];
        Ldmatrix(b, s_q + BlockAddress<T>(k_lane, nt2, ks));
#pragma unroll
        for (int mt = 0; mt < T::kMTiles; ++mt) {
          Mma(r_s[mt][2 * nt2], a[mt], b[0], b[1]);
          Mma(r_s[mt][2 * nt2 + 1], a[mt], b[2], b[3]);
        }
      }
    }

    const Range kr = KeyTile<T>(kt, p.nk);
#pragma unroll
    for (int mt = 0; mt < T::kMTiles; ++mt) {
      if (kr.rows < T::kBlockN) MaskKeys<T>(r_s[mt], lane, kr.begin, p.nk);
      float tile_max[2];
      RowMax<T>(r_s[mt], tile_max);
      tile_max[0] = QuadMax(tile_max[0]);
      tile_max[1] = QuadMax(tile_max[1]);
      SoftmaxStep<T>(r_s[mt], r_o[mt], st[mt], tile_max, p.scale_log2);
    }

#pragma unroll
    for (int kk = 0; kk < T::kPvSteps; ++kk) {
      uint32_t a[T::kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < T::kMTiles; ++mt) PackP<T>(r_s[mt], kk, a[mt]);
#pragma unroll
      for (int dt2 = 0; dt2 < T::kOTiles / 2; ++dt2) {
        uint32_t b[4];
        LdmatrixTrans(b, s_q + BlockAddress<T>(v_lane, kk, dt2));
#pragma unroll
        for (int mt = 0; mt < T::kMTiles; ++mt) {
          Mma(r_o[mt][2 * dt2], a[mt], b[0], b[1]);
          Mma(r_o[mt][2 * dt2 + 1], a[mt], b[2], b[3]);
        }
      }
    }
  }

  auto* g_o = OutputBase<kBf16Out>(p, head);  // [nq, dh], row stride o_row
#pragma unroll
  for (int mt = 0; mt < T::kMTiles; ++mt) {
    const float inv[2] = {InverseSum(QuadSum(st[mt].sum[0])), InverseSum(QuadSum(st[mt].sum[1]))};
#pragma unroll
    for (int dt = 0; dt < T::kOTiles; ++dt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = qt.begin + OutputRow<T>(warp, mt, lane, h);  // elements 2h, 2h + 1: one row
        if (row < p.nq) {
          StorePair(g_o + row * p.o_row + dt * 8 + FragC(lane, 2 * h).col, r_o[mt][dt][2 * h] * inv[h],
                    r_o[mt][dt][2 * h + 1] * inv[h]);
        }
      }
    }
  }
}

template <class T>
Status Launch(const Params& p, cudaStream_t stream) {
  return p.o_bf16 ? LaunchFlashKernel(FlashForwardKernel<T, true>, T::kBlockM, T::kThreads, T::kSmemBytes, p, stream)
                  : LaunchFlashKernel(FlashForwardKernel<T, false>, T::kBlockM, T::kThreads, T::kSmemBytes, p, stream);
}

// Of the f32-output kernel (the bf16-output one differs only in its epilogue).
template <class T>
Result<KernelResources> QueryResources() {
  return FlashKernelResources(FlashForwardKernel<T, false>, T::kThreads, T::kSmemBytes);
}

using detail::Entry;

template <int kHeadDim>
const std::vector<Entry>& Entries() {
  static const std::vector<Entry> entries = [] {
    std::vector<Entry> v;
    ForEachConfig(typename Candidates<kHeadDim>::List{}, [&]<class T>(int) {
      v.push_back({{ConfigName<T>(), T::kHeadDim, T::kWarps, T::kMTiles, T::kBlockM, T::kBlockN, T::kStages,
                    T::kQInRegs, T::kThreads, T::kSmemBytes},
                   &Launch<T>,
                   &QueryResources<T>});
    });
    // Then the wgmma configurations of this head dim (sm_90 only).
    const std::vector<Entry>& wgmma = hopper::Entries(kHeadDim);
    v.insert(v.end(), wgmma.begin(), wgmma.end());
    return v;
  }();
  return entries;
}

const std::vector<Entry>* EntriesFor(int head_dim) {
  switch (head_dim) {
    case 32:
      return &Entries<32>();
    case 64:
      return &Entries<64>();
    case 128:
      return &Entries<128>();
    default:
      return nullptr;
  }
}

int MmaDefaultIndex(int head_dim) {
  switch (head_dim) {
    case 32:
      return Candidates<32>::kDefault;
    case 64:
      return Candidates<64>::kDefault;
    default:
      return Candidates<128>::kDefault;
  }
}

// The wgmma default where it can run on the current device (sm_90, not switched off), else the
// cp.async-fed wgmma one (DS_FLASH_NO_WGMMA=tma), else the mma.sync one. Asked per call
// (attention.cpp resolves the choice per call): a few attribute reads, against kernels of
// microseconds at the least.
int DefaultIndex(int head_dim) {
  const int first_hopper = static_cast<int>(EntriesFor(head_dim)->size() - hopper::Entries(head_dim).size());
  for (int entry : {hopper::DefaultEntry(head_dim), hopper::CpAsyncDefaultEntry(head_dim)}) {
    if (entry >= 0 && Runnable(head_dim, first_hopper + entry).ok()) return first_hopper + entry;
  }
  return MmaDefaultIndex(head_dim);
}

// Whether `name` is one of the comma-separated names of `list`.
bool NameListed(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool Aligned(const void* ptr, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % static_cast<uintptr_t>(bytes) == 0;
}

}  // namespace

Status CheckKernelImage() {
  cudaFuncAttributes attributes;
  const cudaError_t e = cudaFuncGetAttributes(&attributes, FlashForwardKernel<DefaultTraits<64>, false>);
  if (e == cudaSuccess) return Status::Ok();
  cudaGetLastError();
  return Status(Code::kUnsupported, std::string("no kernel image for this GPU in the build (built for ") +
                                        DS_CUDA_ARCHS + "): " + cudaGetErrorString(e));
}

bool SupportsHeadDim(int head_dim) { return EntriesFor(head_dim) != nullptr; }

std::vector<ConfigInfo> Configs(int head_dim) {
  std::vector<ConfigInfo> out;
  if (const auto* entries = EntriesFor(head_dim)) {
    for (const Entry& e : *entries) out.push_back(e.info);
  }
  return out;
}

Result<KernelResources> Resources(int head_dim, int config) {
  const auto* entries = EntriesFor(head_dim);
  if (!entries || config < 0 || config >= static_cast<int>(entries->size())) {
    return Status(Code::kInvalidArgument,
                  "flash attention: no config " + std::to_string(config) + " for head dim " + std::to_string(head_dim));
  }
  return (*entries)[static_cast<size_t>(config)].resources();
}

size_t ScratchBytes(int head_dim, int config, int heads, int nk) {
  const auto* entries = EntriesFor(head_dim);
  if (!entries || config < 0 || config >= static_cast<int>(entries->size())) return 0;
  if (!(*entries)[static_cast<size_t>(config)].info.wgmma) return 0;
  return static_cast<size_t>(heads) * static_cast<size_t>(head_dim) * static_cast<size_t>(hopper::VtRow(nk)) * 2;
}

Status Runnable(int head_dim, int config) {
  const auto* entries = EntriesFor(head_dim);
  if (!entries || config < 0 || config >= static_cast<int>(entries->size())) {
    return Status(Code::kInvalidArgument,
                  "flash attention: no config " + std::to_string(config) + " for head dim " + std::to_string(head_dim));
  }
  const ConfigInfo& info = (*entries)[static_cast<size_t>(config)].info;
  if (!info.wgmma) return Status::Ok();
  // A switch for bench/gpu_check.sh: when the wgmma kernels' smoke test fails or hangs, the rest
  // of the check runs without them instead of losing its GPU time to the same fault
  // (DS_FLASH_NO_WGMMA=tma: only the TMA-fed ones).
  if (const char* off = std::getenv("DS_FLASH_NO_WGMMA"); off != nullptr && *off != '\0' && *off != '0') {
    if (std::string_view(off) != "tma" || info.tma) {
      return Status(Code::kUnsupported, "flash attention config " + info.name + " disabled by DS_FLASH_NO_WGMMA");
    }
  }
  // The same for single configurations, by name (comma-separated): a new kernel whose smoke test
  // fails is left out without taking the measured ones with it.
  if (const char* skip = std::getenv("DS_FLASH_SKIP"); skip != nullptr && NameListed(skip, info.name)) {
    return Status(Code::kUnsupported, "flash attention config " + info.name + " disabled by DS_FLASH_SKIP");
  }
  int device = 0, major = 0, minor = 0;
  DS_CUDA_TRY(cudaGetDevice(&device));
  DS_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  DS_CUDA_TRY(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  // wgmma is in the sm_90a image only; a build without one would run the kernels' __trap().
  if (std::string_view(DS_CUDA_ARCHS).find("90a") == std::string_view::npos) {
    return Status(Code::kUnsupported, "flash attention config " + info.name +
                                          " uses wgmma, and this build has no sm_90a image (built for " +
                                          DS_CUDA_ARCHS + ")");
  }
  if (major == 9 && minor == 0) return Status::Ok();
  return Status(Code::kUnsupported, "flash attention config " + info.name +
                                        " uses wgmma, which needs an sm_90 GPU "
                                        "(Hopper); this one is sm_" +
                                        std::to_string(major) + std::to_string(minor));
}

int DefaultConfig(int head_dim) { return SupportsHeadDim(head_dim) ? DefaultIndex(head_dim) : -1; }

int FindConfig(int head_dim, std::string_view name) {
  const auto* entries = EntriesFor(head_dim);
  if (!entries) return -1;
  for (size_t i = 0; i < entries->size(); ++i) {
    if ((*entries)[i].info.name == name) return static_cast<int>(i);
  }
  return -1;
}

Result<Choice> Choice::Named(std::string_view name) {
  Choice c;
  if (name.empty()) return c;
  bool found = false;
  for (int i = 0; i < kHeadDims; ++i) {
    c.index_[i] = FindConfig(kHeadDimList[i], name);
    found = found || c.index_[i] >= 0;
  }
  if (!found) {
    std::string known;
    for (int hd : kHeadDimList) {
      for (const ConfigInfo& info : Configs(hd))
        known.append(" ").append(info.name).append(" (hd ").append(std::to_string(hd)).append(")");
    }
    return Status(Code::kInvalidArgument, "flash attention config \"" + std::string(name) + "\" is none of:" + known);
  }
  return c;
}

Result<Choice> Choice::FromOption(const std::string& option) {
  if (!option.empty()) return Named(option);
  const char* env = std::getenv("DS_FLASH_CONFIG");
  Result<Choice> c = Named(env ? env : "");
  if (!c.ok()) return Status(c.status().code(), "DS_FLASH_CONFIG: " + c.status().message());
  return c;
}

int Choice::index(int head_dim) const {
  for (int i = 0; i < kHeadDims; ++i) {
    if (kHeadDimList[i] == head_dim && index_[i] >= 0) return index_[i];
  }
  return DefaultConfig(head_dim);
}

bool Choice::named(int head_dim) const {
  for (int i = 0; i < kHeadDims; ++i) {
    if (kHeadDimList[i] == head_dim) return index_[i] >= 0;
  }
  return false;
}

Choice Choice::With(int head_dim, int config) const {
  Choice c = *this;
  for (int i = 0; i < kHeadDims; ++i) {
    if (kHeadDimList[i] == head_dim) c.index_[i] = config;
  }
  return c;
}

Status Check(const Params& p, int head_dim) {
  if (!SupportsHeadDim(head_dim)) {
    return Status(Code::kUnsupported,
                  "flash attention: head dim " + std::to_string(head_dim) + " (supported: 32, 64, 128)");
  }
  const bool inputs = Aligned(p.q, 16) && Aligned(p.k, 16) && Aligned(p.v, 16) && p.q_row % 8 == 0 &&
                      p.q_head % 8 == 0 && p.k_row % 8 == 0 && p.k_head % 8 == 0 && p.v_row % 8 == 0 &&
                      p.v_head % 8 == 0;
  const bool output = Aligned(p.o, p.o_bf16 ? 4 : 8) && p.o_row % 2 == 0 && p.o_head % 2 == 0;
  if (!inputs || !output) {
    return Status(Code::kInvalidArgument,
                  "flash attention: q/k/v rows must be 16-byte aligned and o rows hold whole pairs (element strides "
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

Status Forward(const Params& p, int head_dim, cudaStream_t stream, int config) {
  DS_TRY(Check(p, head_dim));
  const std::vector<Entry>& entries = *EntriesFor(head_dim);
  const int index = config == kDefaultConfig ? DefaultIndex(head_dim) : config;
  if (index < 0 || index >= static_cast<int>(entries.size())) {
    return Status(Code::kInvalidArgument, "flash attention: head dim " + std::to_string(head_dim) + " has no config " +
                                              std::to_string(config) + " (it has " + std::to_string(entries.size()) +
                                              ")");
  }
  const Entry& entry = entries[static_cast<size_t>(index)];
  if (entry.info.wgmma) {
    DS_TRY(Runnable(head_dim, index));
    if (p.v_t == nullptr || !Aligned(p.v_t, 16)) {
      return Status(Code::kInvalidArgument, "flash attention config " + entry.info.name +
                                                " needs Params::v_t: 16-byte aligned scratch of ScratchBytes() = " +
                                                std::to_string(ScratchBytes(head_dim, index, p.heads, p.nk)) +
                                                " bytes");
    }
  }
  return entry.launch(p, stream);
}

}  // namespace ds::cuda::flash
