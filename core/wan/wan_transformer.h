// The Wan2.1 diffusion transformer (diffusers WanTransformer3DModel, reference/wan21_spec.md §2):
// Conv3d patch embedding → blocks of [modulated self-attention with full-width q/k RMSNorm and 3D
// RoPE, affine-LN cross-attention to the projected text, modulated GELU-tanh FFN] → head.
//
// Its own class rather than a Dit block kind: Wan modulates every block from one shared time
// projection plus a per-block learned table (not a per-block linear), normalises q/k over the whole
// width before the head split, projects text through a 2-layer MLP, feeds the head with the time
// embedding itself, and orders unpatchify channels (pt, ph, pw, c). Threading those through the
// generic Dit would give it five Wan-only switches; the shared pieces (Backend ops, Linear, RoPE
// tables) are reused as they are.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/first_block_cache.h"
#include "core/layers.h"
#include "core/rope.h"
#include "core/status.h"
#include "core/wan/wan_config.h"
#include "core/wan/wan_lora.h"

namespace ds {

class Weights;

class WanTransformer {
 public:
  // path: a diffusers transformer/ folder (config.json + safetensors, sharded or not), or a
  // checkpoint (file, index or folder) with the original Wan names, whose config is derived from
  // the tensor shapes. The blocks' matrices (98% of the weights) stay in the checkpoint's dtype:
  // BF16/F16 mapped from the file on the host and copied as they are to a GPU, 2 bytes a weight;
  // just before a block runs, those its backend's linear does not take as stored are widened (to
  // float32 on the CPU, to BF16 on a GPU). The rest is converted at load.
  // loras: adapters merged into the weights they change (wan_lora.h); those matrices are copies,
  // kept in the checkpoint's dtype (F8 as BF16).
  static Result<WanTransformer> Load(const std::string& path, const std::vector<LoraSpec>& loras = {});

  WanTransformer(WanTransformer&&) noexcept;
  WanTransformer& operator=(WanTransformer&&) noexcept;
  ~WanTransformer();

  const WanTransformerConfig& config() const { return cfg_; }

  // One forward of one item. latent [in_channels, T, H, W]; context [text_len, text_dim] (prompt rows
  // then exact zeros, as the pipeline pads them); timestep: the scheduler's integer timestep.
  // Writes the flow prediction velocity [out_channels, T, H, W]. With cache.threshold > 0 the
  // forward may skip blocks 1 to the last (core/first_block_cache.h); the cache's buffers (five
  // residual streams, 1 GB for the 1.3B at 480p) live with the activations.
  Status Forward(Backend& be, const float* latent, int T, int H, int W, float timestep, const float* context,
                 int text_len, float* velocity, const BlockCacheUse& cache = {});
  // Forgets what the first-block cache kept (call it before a clip's first step), and what it did.
  void ResetBlockCache();
  FirstBlockCache::Stats block_cache_stats(int slot) const;

  // Frees the activation buffers (1.4 GB for the 1.3B at 480x832x81; in the backend's memory)
  // until the next Forward, so the VAE decode after denoising does not carry them. Weights copied
  // to a GPU backend stay until ReleaseDeviceWeights or destruction.
  void ReleaseWorkspace();
  void ReleaseDeviceWeights();

  // Whether the next Forward with the same backend and geometry replays the ops its backend
  // recorded (Backend::RunRecorded: a CUDA graph) instead of issuing them; for checks and benchmarks.
  bool ForwardReplays() const;
  // The same for a forward through the first-block cache in `slot` that skips the rest (reused) or
  // runs it: whether both its recorded parts replay.
  bool CachedForwardReplays(int slot, bool reused) const;

  // Floating point operations of one forward (multiply-add = 2), for benchmarks.
  double Flops(int T, int H, int W, int text_len) const;

 private:
  struct Block {
    Tensor table;  // [6, D]: shift, scale, gate (self-attention), shift, scale, gate (FFN)
    Linear q, k, v, o, cq, ck, cv, co, fc1, fc2;
    // q, k and v as one [3D, D] matrix (and [3D] bias) where the weights live in a device backend's
    // memory and the three share a dtype: one GEMM reads the normalised rows once. q, k and v are
    // then row views of it. Empty (data null) otherwise.
    Linear qkv;
    std::array<float, 10> scales = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};  // of scaled-F8 matrices, in that order
    Tensor norm_q, norm_k, cnorm_q, cnorm_k, norm2_w, norm2_b;
  };
  struct Workspace;

  // Every weight the ops read: on the host as loaded, and a copy in a non-host backend's memory.
  struct Params {
    Linear patch, t_fc1, t_fc2, t_proj, txt_fc1, txt_fc2, proj_out;
    Tensor head_table;  // [2, D]: shift, scale, added to the time embedding
    std::vector<Block> blocks;
  };

  WanTransformer();
  Status EnsureGeometry(Backend& be, int T, int H, int W, int text_len);
  // The dtypes of the FFN's hidden rows, the normalised rows and the attention's q/k/v/o on `be`
  // (see the definitions).
  bool ReachLinearInBf16(const Backend& be, std::initializer_list<int> which) const;
  DType HiddenDType(const Backend& be) const;
  DType NormDType(const Backend& be) const;
  DType AttentionDType(const Backend& be) const;
  // The weights in `be`'s memory: the host ones for a host backend, else copies made on first use.
  Result<const Params*> ParamsFor(Backend& be);
  // b itself when the backend's linear takes all its matrices as stored, else the workspace's block
  // with the others widened (WidenedWeightDType).
  Result<const Block*> Widen(Backend& be, const Block& b);
  // The forward's ops from the inputs in the workspace to the velocity, in three parts: the
  // embeddings (patches, time, text), blocks [first, last), and the head.
  void EmbedOps(Backend& be, const Params& P);
  Status BlockOps(Backend& be, const Params& P, size_t first, size_t last);
  void HeadOps(Backend& be, const Params& P);
  // The forward through the first-block cache (Forward with a threshold).
  Status CachedForwardOps(Backend& be, const Params& P, const BlockCacheUse& use);
  void RunBlock(Backend& be, const Block& b);

  WanTransformerConfig cfg_;
  std::unique_ptr<Weights> weights_;  // owns the storage (float32 copies, mapped file) host tensors point into
  Params host_;
  std::unique_ptr<Params> device_params_;
  uint64_t device_backend_ = 0;  // Backend::id() the device copies belong to
  std::vector<BackendBuffer> device_storage_;
  RopeTable rope_;
  std::unique_ptr<Workspace> ws_;
};

}  // namespace ds
