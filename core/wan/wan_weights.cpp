#include "core/wan/wan_weights.h"

#include <charconv>
#include <filesystem>
#include <optional>
#include <utility>

#include "core/log.h"

namespace ds {
namespace {

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// Splits "a.b.c" into its dot-separated parts.
std::vector<std::string_view> Parts(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

int ToInt(std::string_view s) {
  int v = -1;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string Join(const std::vector<std::string_view>& parts, size_t first) {
  std::string out;
  for (size_t i = first; i < parts.size(); ++i) {
    if (i > first) out += '.';
    out += parts[i];
  }
  return out;
}

}  // namespace

std::string WanTransformerOriginalName(std::string_view name) {
  if (name == "scale_shift_table") return "head.modulation";
  std::string n(name);
  if (n.ends_with(".scale_shift_table")) return ReplaceAll(n, "scale_shift_table", "modulation");
  // The affine pre-cross-attention LayerNorm is norm3 in the original (diffusers renames by call order).
  if (n.find(".norm2.") != std::string::npos) return ReplaceAll(n, ".norm2.", ".norm3.");
  static const std::pair<std::string_view, std::string_view> kRenames[] = {
      {"condition_embedder.time_embedder.linear_1", "time_embedding.0"},
      {"condition_embedder.time_embedder.linear_2", "time_embedding.2"},
      {"condition_embedder.text_embedder.linear_1", "text_embedding.0"},
      {"condition_embedder.text_embedder.linear_2", "text_embedding.2"},
      {"condition_embedder.time_proj", "time_projection.1"},
      {"attn1.to_out.0.", "self_attn.o."},
      {"attn1.to_q.", "self_attn.q."},
      {"attn1.to_k.", "self_attn.k."},
      {"attn1.to_v.", "self_attn.v."},
      {"attn1.norm_", "self_attn.norm_"},
      {"attn2.to_out.0.", "cross_attn.o."},
      {"attn2.to_q.", "cross_attn.q."},
      {"attn2.to_k.", "cross_attn.k."},
      {"attn2.to_v.", "cross_attn.v."},
      {"attn2.norm_", "cross_attn.norm_"},
      {"ffn.net.0.proj", "ffn.0"},
      {"ffn.net.2", "ffn.2"},
      {"proj_out", "head.head"},
  };
  for (const auto& [from, to] : kRenames) n = ReplaceAll(n, from, to);
  return n;
}

std::string WanVaeOriginalName(std::string_view name) {
  // Residual blocks are Sequentials in the original: 0 RMS_norm, 2 conv1, 3 RMS_norm, 6 conv2.
  static const std::pair<std::string_view, std::string_view> kResidual[] = {
      {"norm1.gamma", "residual.0.gamma"},         {"conv1.weight", "residual.2.weight"},
      {"conv1.bias", "residual.2.bias"},           {"norm2.gamma", "residual.3.gamma"},
      {"conv2.weight", "residual.6.weight"},       {"conv2.bias", "residual.6.bias"},
      {"conv_shortcut.weight", "shortcut.weight"}, {"conv_shortcut.bias", "shortcut.bias"},
  };
  auto residual = [&](const std::string& leaf) {
    for (const auto& [from, to] : kResidual)
      if (leaf == from) return std::string(to);
    return leaf;
  };
  const std::vector<std::string_view> p = Parts(name);
  if (name.starts_with("post_quant_conv.")) return "conv2." + std::string(p.back());
  if (name.starts_with("decoder.conv_in.")) return "decoder.conv1." + std::string(p.back());
  if (name.starts_with("decoder.norm_out.")) return "decoder.head.0." + std::string(p.back());
  if (name.starts_with("decoder.conv_out.")) return "decoder.head.2." + std::string(p.back());
  if (name.starts_with("decoder.mid_block.resnets.") && p.size() > 4) {
    return fmt::format("decoder.middle.{}.{}", 2 * ToInt(p[3]), residual(Join(p, 4)));
  }
  if (name.starts_with("decoder.mid_block.attentions.0.")) return "decoder.middle.1." + Join(p, 4);
  if (name.starts_with("decoder.up_blocks.") && p.size() > 5) {
    // up_blocks.b.resnets.r → upsamples.(4b + r); up_blocks.b.upsamplers.0 → upsamples.(4b + 3).
    const int block = ToInt(p[2]);
    if (p[3] == "resnets") return fmt::format("decoder.upsamples.{}.{}", 4 * block + ToInt(p[4]), residual(Join(p, 5)));
    if (p[3] == "upsamplers") return fmt::format("decoder.upsamples.{}.{}", 4 * block + 3, Join(p, 5));
  }
  return std::string(name);
}

Result<WanCheckpointNaming> DetectWanTransformerNaming(const Weights& w) {
  if (w.Has("scale_shift_table") && w.Has("proj_out.weight")) return WanCheckpointNaming{WanNaming::kDiffusers, ""};
  for (const char* prefix : {"", "model.diffusion_model."}) {
    if (w.Has(std::string(prefix) + "head.modulation")) return WanCheckpointNaming{WanNaming::kOriginal, prefix};
  }
  return Error(Code::kModel,
               "{}: unknown transformer layout: neither diffusers names ('scale_shift_table', 'proj_out.weight') nor "
               "original Wan names ('head.modulation', optionally under 'model.diffusion_model.')",
               w.checkpoint().path());
}

Result<WanCheckpointNaming> DetectWanVaeNaming(const Weights& w) {
  if (w.Has("decoder.mid_block.resnets.0.norm1.gamma")) return WanCheckpointNaming{WanNaming::kDiffusers, ""};
  if (w.Has("decoder.middle.0.residual.0.gamma")) return WanCheckpointNaming{WanNaming::kOriginal, ""};
  return Error(Code::kModel,
               "{}: unknown VAE layout: neither diffusers names ('decoder.mid_block.resnets.0.norm1.gamma') nor "
               "original Wan names ('decoder.middle.0.residual.0.gamma')",
               w.checkpoint().path());
}

std::string WanTensorReader::stored_name(std::string_view name) const {
  if (naming_.naming == WanNaming::kDiffusers || to_original_ == nullptr) return std::string(name);
  return naming_.prefix + to_original_(name);
}

Tensor WanTensorReader::get(std::string_view name, std::vector<int64_t> shape) {
  if (!status_.ok()) return {};
  const std::string stored = stored_name(name);
  Result<Tensor> t = weights_.Get(stored, shape);
  if (!t.ok()) {
    status_ = t.status();
    return {};
  }
  if (stored.ends_with(".weight")) ScaleOnce(stored, *t);
  MergeLoraOnce(name, stored, *t);
  return *t;
}

std::string WanTensorReader::original_name(std::string_view name) const {
  return to_original_ ? to_original_(name) : std::string(name);
}

bool WanTensorReader::LoraTouches(std::string_view name) const {
  return lora_ != nullptr && lora_->Touches(name, original_name(name));
}

void WanTensorReader::MergeLoraOnce(std::string_view name, const std::string& stored, const Tensor& f32_copy) {
  if (!status_.ok() || lora_ == nullptr) return;
  const std::string original = original_name(name);
  if (!lora_->Touches(name, original) || !merged_.insert(stored).second) return;
  if (const Status s = lora_->Apply(name, original, f32_copy); !s.ok()) status_ = s;
}

void WanTensorReader::ScaleOnce(const std::string& stored_weight_name, const Tensor& f32_copy) {
  if (!scaled_.insert(stored_weight_name).second) return;  // Get hands out the same storage again
  const float scale = WeightScale(stored_weight_name);
  if (scale == 1.0f) return;
  const int64_t n = f32_copy.numel();
  for (int64_t i = 0; i < n; ++i) f32_copy.f32()[i] *= scale;
}

float WanTensorReader::WeightScale(const std::string& stored_weight_name) {
  if (!status_.ok()) return 1.0f;
  const std::string base = stored_weight_name.substr(0, stored_weight_name.size() - std::string_view(".weight").size());
  for (const char* suffix : {".scale_weight", ".weight_scale"}) {
    const std::string key = base + suffix;
    if (!weights_.Has(key)) continue;
    Result<std::vector<int64_t>> shape = weights_.Shape(key);
    const bool scalar = shape.ok() && (shape->empty() || (shape->size() == 1 && (*shape)[0] == 1));
    if (!scalar) {
      status_ = Error(Code::kUnsupported, "{}: '{}' has shape [{}]: only one scale per tensor is supported",
                      weights_.checkpoint().path(), key, shape.ok() ? fmt::format("{}", fmt::join(*shape, ", ")) : "?");
      return 1.0f;
    }
    Result<Tensor> t = weights_.Get(key, *shape);
    if (!t.ok()) {
      status_ = t.status();
      return 1.0f;
    }
    return t->f32()[0];
  }
  return 1.0f;
}

Linear WanTensorReader::linear(std::string_view name, int64_t out, int64_t in, bool bias) {
  Linear l;
  const std::string n(name);
  l.w = get(n + ".weight", {out, in});  // scaled there if the checkpoint says so
  if (bias) l.b = get(n + ".bias", {out});
  return l;
}

Linear WanTensorReader::stored_linear(std::string_view name, int64_t out, int64_t in, float* scale, bool bias,
                                      Weights::StoredF32 f32) {
  Linear l;
  *scale = 1.0f;
  if (!status_.ok()) return l;
  const std::string n(name), stored = stored_name(n + ".weight");
  if (LoraTouches(n + ".weight")) {
    // A LoRA changes it: the merged float32 copy, kept at the checkpoint's width (F8 as BF16, scaled).
    l.w = get(n + ".weight", {out, in});
    if (bias) l.b = get(n + ".bias", {out});
    const SafetensorsEntry* e = weights_.checkpoint().find(stored);
    if (!status_.ok() || e == nullptr) return l;
    const std::optional<DType> as_stored = FloatDType(e->dtype);
    if (as_stored && *as_stored != DType::kF32) {
      Result<Tensor> narrow = weights_.Narrow(stored, *as_stored == DType::kF16 ? DType::kF16 : DType::kBF16);
      if (!narrow.ok()) {
        status_ = narrow.status();
        return l;
      }
      l.w = *narrow;
    }
    return l;
  }
  Result<Tensor> w = weights_.GetStored(stored, {out, in}, f32);
  if (!w.ok()) {
    status_ = w.status();
    return l;
  }
  l.w = *w;
  if (bias) l.b = get(n + ".bias", {out});
  if (l.w.dtype == DType::kF32 && f32 == Weights::StoredF32::kCopy) {
    ScaleOnce(stored, l.w);  // Get's own float32 copy, scaled once here
  } else {
    *scale = WeightScale(stored);  // applied as it is widened
  }
  return l;
}

Result<std::unique_ptr<Weights>> OpenWanWeights(const std::string& path, std::string_view component) {
  Result<Weights> w = Weights::Open(path);
  if (!w.ok()) {
    return Status(w.status().code(), fmt::format("Wan {}: {}", component, w.status().message()));
  }
  return std::make_unique<Weights>(std::move(w).value());
}

void WarnUnusedWanTensors(const Weights& w, std::string_view component,
                          const std::vector<std::string_view>& expected_unused) {
  size_t count = 0;
  std::string first;
  for (const std::string& name : w.Unused()) {
    // Side data of fp8 checkpoints the model has no use for: the scaled_fp8 marker, the input scales
    // of FP8 matrix multiplies (the engine multiplies in float32), ComfyUI's per-layer format notes.
    bool expected = name.ends_with("scaled_fp8") || name.ends_with(".scale_input") || name.ends_with(".input_scale") ||
                    name.ends_with(".comfy_quant");
    for (std::string_view p : expected_unused) expected = expected || name.starts_with(p);
    if (expected) continue;
    if (count++ == 0) first = name;
  }
  if (count > 0) {
    Log(LogLevel::kWarning, "{}: {} tensor(s) not used by the Wan {} (first: '{}')", w.checkpoint().path(), count,
        component, first);
  }
}

}  // namespace ds
