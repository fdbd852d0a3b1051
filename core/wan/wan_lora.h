// LoRA adapters for the Wan transformer, merged into its weights as they load (ComfyUI and
// diffusers merge them the same way): W += strength · (alpha / rank) · up · down for a low-rank pair,
// W += strength · diff for a full delta. What Wan LoRAs ship as (style LoRAs, LightX2V's few-step
// distillation) comes in several spellings, all read here:
//   - the pair: `<module>.lora_down.weight` / `.lora_up.weight` (kohya, ComfyUI) or `.lora_A.weight`
//     / `.lora_B.weight` (PEFT, diffusers), with an optional `<module>.alpha` (no alpha: scale 1);
//   - full deltas: `<module>.diff` (the weight, or a parameter without `.weight` such as a block's
//     modulation table), `<module>.diff_b` (the bias) and `blocks.N.diff_m` (LightX2V's spelling of
//     the block's modulation table);
//   - the module in diffusers names (`blocks.0.attn1.to_q`) or the original Wan names
//     (`blocks.0.self_attn.q`), dotted or with underscores (`lora_unet_blocks_0_self_attn_q`), behind
//     any of the usual prefixes (`diffusion_model.`, `transformer.`, `lora_unet_`, …).
// A key that matches no tensor of the model is an error naming the file and the key: a LoRA made for
// another model (the 14B's on the 1.3B, an image-to-video LoRA) must not load half-applied.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace ds {

struct LoraSpec {
  std::string path;  // a .safetensors file
  double strength = 1.0;
};

class WanLora {
 public:
  // Opens and checks every file (pairs complete, ranks consistent, alphas scalar). No specs: an empty
  // set that changes nothing.
  static Result<WanLora> Open(const std::vector<LoraSpec>& specs);
  WanLora();
  WanLora(WanLora&&) noexcept;
  WanLora& operator=(WanLora&&) noexcept;
  ~WanLora();

  bool empty() const;
  // Whether any file changes tensor `name` (its diffusers name; `original`: its original Wan name).
  bool Touches(std::string_view name, std::string_view original) const;
  // Adds every file's delta for tensor `name` to `w`, a contiguous float32 tensor of the model's shape
  // (matrices [out, in], convolutions [out, in, kt, kh, kw] taken as [out, in·kt·kh·kw]); the error
  // names the file, the key and both shapes when they do not fit.
  Status Apply(std::string_view name, std::string_view original, const Tensor& w);
  // Once the model has loaded: an error naming the first key that changed nothing.
  Status CheckAllUsed() const;

 private:
  struct Files;
  std::unique_ptr<Files> files_;
};

}  // namespace ds
