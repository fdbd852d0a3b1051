// Flash attention forward (FlashAttention-2 style) on tensor cores: mma.sync m16n8k16 with bf16
// q/k/v and f32 accumulation, online softmax, K/V tiles streamed through a ring of shared-memory
// buffers by cp.async. Non-causal, no mask, head dims 32/64/128, sm_80 and newer. The tile
// constants live in flash::Traits (flash_layout.h), which also lists the configurations built per
// head dim (flash::Candidates); the readable reference is naive_attention.cu. On Hopper (sm_90)
// further configurations run the wgmma kernel of flash_hopper.cu (hopper_layout.h); they are
// listed with the others and chosen the same way.
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kernels/cuda/attention/flash_layout.h"

namespace ds::cuda::flash {

bool SupportsHeadDim(int head_dim);

// One built configuration of the kernel (flash::Traits as data).
struct ConfigInfo {
  std::string name;  // ConfigName: "w4x2_k32_s3_qs"
  int head_dim, warps, m_tiles, block_m, block_n, stages;
  bool q_in_regs;
  int threads, smem_bytes;
  // The wgmma kernel (flash_hopper.cu): runs on sm_90 only (Runnable) and reads V transposed from
  // Params::v_t (ScratchBytes).
  bool wgmma = false;
  // The warp-specialised wgmma kernel: a producer warpgroup feeds it by TMA (tensor maps built
  // per call; strides the TMA cannot walk run the cp.async kernel of the same tile instead).
  bool tma = false;
};

// The configurations of a head dim, in Candidates<head_dim>::List order (empty if unsupported).
std::vector<ConfigInfo> Configs(int head_dim);
// What the compiled kernel of a configuration takes on the current device.
struct KernelResources {
  int registers;      // per thread
  int local_bytes;    // per thread: spills (0 in a clean build)
  int blocks_per_sm;  // resident blocks at its shared memory and registers
};
Result<KernelResources> Resources(int head_dim, int config);
// Index of the head dim's default configuration on the current device, -1 if unsupported: on
// sm_90 the wgmma one (hopper::Candidates::kDefault) unless DS_FLASH_NO_WGMMA is set, elsewhere
// the mma.sync one (Candidates::kDefault).
int DefaultConfig(int head_dim);
// Index of the configuration called `name` for this head dim, or -1.
int FindConfig(int head_dim, std::string_view name);

// Which configuration runs for each head dim.
class Choice {
 public:
  Choice() = default;  // every head dim's default
  // The configuration called `name` for every head dim that has one, the default for the others;
  // "" = all defaults. kInvalidArgument (listing the names) when no head dim has it.
  static Result<Choice> Named(std::string_view name);
  // Named(option), or when option is empty, Named($DS_FLASH_CONFIG) (unset: all defaults).
  static Result<Choice> FromOption(const std::string& option);
  int index(int head_dim) const;
  // Whether the user named this head dim's configuration (else index() is its default, which
  // attention_tuning.h may replace by timing).
  bool named(int head_dim) const;
  // This choice with `config` for head dim `head_dim` (one this build has).
  Choice With(int head_dim, int config) const;

 private:
  static constexpr int kHeadDims = 3;
  static constexpr int kHeadDimList[kHeadDims] = {32, 64, 128};
  int index_[kHeadDims] = {-1, -1, -1};  // -1: the default
};

// Bytes of device scratch a configuration needs in Params::v_t for `heads` heads of `nk` keys
// (0 for all but the wgmma ones: bf16 Vᵀ, [heads, head_dim, nk rounded up to 8]).
size_t ScratchBytes(int head_dim, int config, int heads, int nk);

// kUnsupported (naming the device's compute capability) when configuration `config` of the head
// dim cannot run on the current device: the wgmma configurations need sm_90.
Status Runnable(int head_dim, int config);

// Why p cannot run (head dim, alignment), or Ok. q/k/v rows must be 16-byte aligned (base and
// strides multiples of 8 elements), o rows aligned to a pair of its elements (even strides).
Status Check(const Params& p, int head_dim);

// kUnsupported when this build carries no kernel image (SASS or PTX) the current device can run.
Status CheckKernelImage();

constexpr int kDefaultConfig = -1;

// Enqueues o = softmax(q·kᵀ·scale)·v on `stream` (p.scale_log2 = scale·log2 e) with configuration
// `config` of Configs(head_dim) (kDefaultConfig: DefaultConfig(head_dim)).
Status Forward(const Params& p, int head_dim, cudaStream_t stream, int config = kDefaultConfig);

namespace detail {
// One built configuration: what it is, how to launch it, what it takes on the device.
struct Entry {
  ConfigInfo info;
  Status (*launch)(const Params&, cudaStream_t);
  Result<KernelResources> (*resources)();
};
}  // namespace detail

}  // namespace ds::cuda::flash
