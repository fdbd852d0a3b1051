// The UMT5 text encoder Wan2.1 conditions on (transformers UMT5EncoderModel, reference/wan21_spec.md
// §1): RMSNorm pre-norm blocks with a per-layer bucketed relative-position attention bias, no
// attention scaling, gated tanh-GELU FFN.
//
// UMT5-XXL is 5.7 B parameters (23 GB in float32), more than the whole DiT, and runs once per
// prompt. So its weights stay in the memory-mapped checkpoint as stored (BF16, F16, F8 with scales,
// or float32) and each layer's matrices are widened in the backend's memory only while the layer
// runs (to float32 on the CPU, peak ≈ one layer, 0.8 GB for XXL; to BF16 on a GPU, where the
// stored bytes cross PCIe and are widened), unless the backend's linear takes them as stored
// (float32 on the CPU, BF16 on a GPU); the token embedding table converts just the rows of the
// prompt's tokens.
#pragma once

#include <array>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/status.h"
#include "core/wan/wan_config.h"

namespace ds {

class Weights;
struct SafetensorsEntry;

class Umt5Encoder {
 public:
  // folder: a text_encoder/ folder (config.json + safetensors, sharded or not, F32/F16/BF16, or F8
  // with per-tensor scale_weight as ComfyUI's umt5_xxl_fp8_e4m3fn_scaled).
  // Every tensor's presence and shape is checked here, so Encode cannot fail on the checkpoint.
  static Result<Umt5Encoder> Load(const std::string& folder);

  Umt5Encoder(Umt5Encoder&&) noexcept;
  Umt5Encoder& operator=(Umt5Encoder&&) noexcept;
  ~Umt5Encoder();

  const Umt5Config& config() const { return cfg_; }

  // last_hidden_state of the L = ids.size() tokens: out [L, d_model]. Running on the real tokens
  // only equals running padded with a mask (padded keys get weight exactly 0, the bias depends only
  // on key − query), which is what the Wan pipeline then keeps.
  Status Encode(Backend& be, std::span<const int> ids, std::vector<float>& out);

  // Hands the resident pages of the memory-mapped checkpoint back to the OS (for UMT5-XXL up to
  // 11 GB after an Encode), so the DiT does not run beside them; the next Encode reads them again.
  void ReleaseMemory();

  // T5 relative-position bucket of key − query for a bidirectional encoder (float32 log as torch).
  static int Bucket(int relative_position, int num_buckets, int max_distance);

 private:
  static constexpr int kMatrices = 7;  // q, k, v, o, wi_0, wi_1, wo
  struct Layer {
    std::vector<float> ln0, ln1;              // RMSNorm weights, float32
    std::array<Tensor, kMatrices> w;          // as stored in the mapped checkpoint
    std::array<float, kMatrices> scale = {};  // of scaled-F8 matrices, else 1
    std::vector<float> bias_table;            // [buckets, heads]
  };
  Umt5Encoder() = default;
  // Sets matrix_ to the layer's matrices in the backend's memory: as stored when the backend's
  // linear takes that dtype (and no F8 scale applies), else widened in wide_ (WidenedWeightDType).
  Status WidenLayer(Backend& be, const Layer& l);

  Umt5Config cfg_;
  std::unique_ptr<Weights> weights_;
  const SafetensorsEntry* embed_ = nullptr;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  // One layer's widened matrices in the backend's memory, reused layer after layer and freed when
  // Encode returns; on a GPU the stored bytes pass through staged_ on their way.
  std::array<BackendBuffer, kMatrices> wide_, staged_;
  std::array<Tensor, kMatrices> matrix_;  // what the current layer's linears multiply by
};

}  // namespace ds
