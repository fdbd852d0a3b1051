// Reading a Wan component's tensors by their diffusers names (reference/wan21_spec.md §2.2, §4.3)
// from checkpoints that use either the diffusers names or the original Wan names (Wan-AI's own
// repos, ComfyUI's repackaged files), so the model code is written once, against one naming.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/layers.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/wan/wan_lora.h"
#include "core/weights.h"

namespace ds {

enum class WanNaming { kDiffusers, kOriginal };

// diffusers name → original Wan name (inverse of diffusers' convert_wan_transformer_to_diffusers).
std::string WanTransformerOriginalName(std::string_view diffusers_name);
// diffusers name → original Wan2.1_VAE name, decoder and post_quant_conv only (inverse of
// convert_wan_vae_to_diffusers).
std::string WanVaeOriginalName(std::string_view diffusers_name);

// Which naming a transformer checkpoint uses, and the prefix its keys carry ("model.diffusion_model."
// in some single-file checkpoints). Errors name the file and the keys looked for.
struct WanCheckpointNaming {
  WanNaming naming = WanNaming::kDiffusers;
  std::string prefix;
};
Result<WanCheckpointNaming> DetectWanTransformerNaming(const Weights& w);
Result<WanCheckpointNaming> DetectWanVaeNaming(const Weights& w);

// Fetches tensors by diffusers name with shape checks, keeping the first error (like WeightReader).
class WanTensorReader {
 public:
  using NameMap = std::string (*)(std::string_view);
  // lora: merged into every tensor it changes as the tensor is read (see wan_lora.h); null for none.
  WanTensorReader(Weights& weights, WanCheckpointNaming naming, NameMap to_original, WanLora* lora = nullptr)
      : weights_(weights), naming_(std::move(naming)), to_original_(to_original), lora_(lora) {}

  std::string stored_name(std::string_view name) const;
  // The original Wan name (no prefix) of diffusers name `name`; `name` itself without a name map.
  std::string original_name(std::string_view name) const;
  bool has(std::string_view name) const { return weights_.Has(stored_name(name)); }
  Tensor get(std::string_view name, std::vector<int64_t> shape);
  // A scaled-F8 weight (ComfyUI's fp8_scaled files: `<layer>.scale_weight` or `.weight_scale`, one
  // float per tensor) comes back multiplied by its scale, from get() as from linear().
  Linear linear(std::string_view name, int64_t out, int64_t in, bool bias = true);
  // The weight as the checkpoint stores it (F16/BF16/F8 mapped, not copied; see
  // Weights::GetStored), the bias in float32, and *scale the factor to widen it with (1 unless the
  // weight is scaled F8): for the large matrices a model widens layer by layer.
  // f32: what a float32 weight comes back as (Weights::GetStored).
  Linear stored_linear(std::string_view name, int64_t out, int64_t in, float* scale, bool bias = true,
                       Weights::StoredF32 f32 = Weights::StoredF32::kCopy);
  const Status& status() const { return status_; }

 private:
  // The per-tensor scale stored beside weight `stored_weight_name`, 1 when there is none.
  float WeightScale(const std::string& stored_weight_name);
  // Multiplies Get's float32 copy of a weight by its scale, once per tensor.
  void ScaleOnce(const std::string& stored_weight_name, const Tensor& f32_copy);
  // Merges the LoRA's delta for tensor `name` into Get's float32 copy, once per tensor.
  void MergeLoraOnce(std::string_view name, const std::string& stored, const Tensor& f32_copy);
  bool LoraTouches(std::string_view name) const;

  Weights& weights_;
  std::set<std::string, std::less<>> scaled_, merged_;
  WanCheckpointNaming naming_;
  NameMap to_original_;
  WanLora* lora_;
  Status status_;
};

// Opens `path` (a file, an index, or a folder holding one) with a clear error naming the component.
Result<std::unique_ptr<Weights>> OpenWanWeights(const std::string& path, std::string_view component);

// Logs a warning for checkpoint tensors the model never read, except names starting with one of
// `expected_unused` (e.g. the VAE encoder, which text-to-video does not need) and fp8 side data.
void WarnUnusedWanTensors(const Weights& w, std::string_view component,
                          const std::vector<std::string_view>& expected_unused = {});

}  // namespace ds
