// The spacetime diffusion transformer (DESIGN.md §1, docs/model_format.md): patchify → AdaLN-Zero
// blocks of kind dit / cross / mmdit → final AdaLN → unpatchify. One implementation, config-driven.
#pragma once

#include <array>
#include <span>
#include <vector>

#include "core/backend.h"
#include "core/first_block_cache.h"
#include "core/layers.h"
#include "core/model_config.h"
#include "core/rope.h"
#include "core/status.h"
#include "core/tensor.h"

namespace ds {

class Weights;

// One sequence of a (possibly CFG-batched) forward.
struct DitItem {
  const float* latent = nullptr;  // [in_channels, T, H, W]
  const float* text = nullptr;    // [text_len, text_dim], may be null when text_len == 0
  int text_len = 0;
  const float* pooled = nullptr;  // [pooled_dim] or null
  float* velocity = nullptr;      // out: [out_channels, T, H, W]
};

class Dit {
 public:
  static Result<Dit> Load(const DitConfig& config, Weights& weights);

  // All items share the latent grid (T, H, W) and the timestep t ∈ [0, 1]. Items are batched
  // through the stream-wide GEMMs (FFN, modulation); attention runs per item. With
  // cache.threshold > 0 the forward may skip blocks 1 to the last (core/first_block_cache.h), for
  // all items together: their residual streams are measured as one.
  Status Forward(Backend& be, std::span<const DitItem> items, float t, int T, int H, int W,
                 const BlockCacheUse& cache = {});
  // Forgets what the first-block cache kept (call it before a clip's first step), and what it did.
  void ResetBlockCache();
  FirstBlockCache::Stats block_cache_stats(int slot) const;

  const DitConfig& config() const { return cfg_; }
  // Floating point operations of one item's forward (multiply-add = 2), for benchmarks.
  double Flops(int T, int H, int W, int text_len) const;

 private:
  struct Stream {  // the per-stream weights of a block (mmdit has two streams, others one)
    Linear mod, q, k, v, out, fc1, fc2;
    Tensor q_norm, k_norm;
  };
  struct CrossAttention {  // block kind `cross`: video queries attend to text tokens
    Tensor norm_w, norm_b;
    Linear q, k, v, out;
    Tensor q_norm, k_norm;
  };
  struct Block {
    Stream x, c;
    CrossAttention cross;
  };
  struct Workspace;

  Status LoadStream(WeightReader& r, const std::string& prefix, Stream& s) const;
  void TimestepEmbedding(float t, float* out) const;
  Status EnsureGeometry(int T, int H, int W);
  void RunBlock(Backend& be, const Block& blk, std::span<const DitItem> items, Workspace& ws);

  DitConfig cfg_;
  Linear x_embed_, t_fc1_, t_fc2_, pooled_fc1_, pooled_fc2_, ctx_embed_, final_mod_, final_;
  std::vector<Block> blocks_;
  std::array<int, 3> grid_ = {0, 0, 0};
  RopeTable rope_;
  std::vector<float> sincos_;
  std::shared_ptr<Workspace> ws_;
};

}  // namespace ds
