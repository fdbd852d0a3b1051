#include "core/wan/wan_config.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>

#include "core/config.h"
#include "core/weights.h"

namespace ds {
namespace {

// Keys that select variants this engine does not implement (Wan2.1 I2V/FLF2V, Wan2.2) must be
// absent or null; anything else would silently compute a different model.
Status RequireNull(const Config& c, std::string_view key, std::string_view what) {
  const nlohmann::json& doc = c.document();
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return Status::Ok();
  return Error(Code::kUnsupported, "{}: '{}' is {} ({}); only Wan2.1 text-to-video is supported", c.name(), key,
               DescribeJson(*it), what);
}

Status Positive(const Config& c, std::string_view key, int64_t v) {
  if (v > 0) return Status::Ok();
  return Error(Code::kModel, "{}: '{}' must be positive, got {}", c.name(), key, v);
}

// A width the model code multiplies out (heads × head size, …) must fit int. `where`: the file.
Status ProductFitsInt(const std::string& where, std::string_view what, int64_t product) {
  if (product <= std::numeric_limits<int>::max()) return Status::Ok();
  return Error(Code::kModel, "{}: {} is {}, beyond any model this engine can hold", where, what, product);
}

// A norm's epsilon: finite and not negative (a negative one takes the square root of less than 0).
Status Epsilon(const std::string& where, std::string_view key, float eps) {
  if (std::isfinite(eps) && eps >= 0.0f) return Status::Ok();
  return Error(Code::kModel, "{}: '{}' must be a finite epsilon ≥ 0, got {}", where, key, eps);
}

// What the transformer code relies on beyond positive sizes, whether the config was read from
// config.json or from a checkpoint's tensor shapes (`where` names that file).
Status CheckTransformerConfig(const WanTransformerConfig& w, const std::string& where) {
  DS_TRY(ProductFitsInt(where, "the width (num_attention_heads x attention_head_dim)", int64_t{w.heads} * w.head_dim));
  DS_TRY(ProductFitsInt(where, "a patch's values (patch_size volume x channels)",
                        int64_t{w.patch[0]} * w.patch[1] * w.patch[2] * std::max(w.in_channels, w.out_channels)));
  DS_TRY(Epsilon(where, "eps", w.eps));
  if (w.head_dim % 2 != 0 || w.freq_dim % 2 != 0 || w.head_dim < 6) {
    return Error(Code::kModel, "{}: attention_head_dim ({}) and freq_dim ({}) must be even, head_dim at least 6", where,
                 w.head_dim, w.freq_dim);
  }
  return Status::Ok();
}

}  // namespace

std::array<int, 3> WanTransformerConfig::rope_axes() const {
  const int hw = 2 * (head_dim / 6);
  return {head_dim - 2 * hw, hw, hw};
}

WanTransformerConfig Wan13BConfig() { return WanTransformerConfig{}; }

WanTransformerConfig Wan14BConfig() {
  WanTransformerConfig c;
  c.heads = 40;
  c.layers = 40;
  c.ffn = 13824;
  return c;
}

std::vector<int> WanVaeConfig::decoder_dims() const {
  std::vector<int> dims = {base_dim * dim_mult.back()};
  for (auto it = dim_mult.rbegin(); it != dim_mult.rend(); ++it) dims.push_back(base_dim * *it);
  return dims;
}

int WanVaeConfig::temporal_factor() const {
  int f = 1;
  for (bool t : temporal_downsample) f *= t ? 2 : 1;
  return f;
}

int WanVaeConfig::spatial_factor() const { return 1 << (static_cast<int>(dim_mult.size()) - 1); }

const std::vector<float>& Wan21LatentsMean() {
  static const std::vector<float> v = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,  -0.1517f, 1.5508f,
                                       0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
  return v;
}

const std::vector<float>& Wan21LatentsStd() {
  static const std::vector<float> v = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                       3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};
  return v;
}

Result<WanTransformerConfig> ParseWanTransformerConfig(const Config& c) {
  WanTransformerConfig w;
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> patch, c.GetIntArray("patch_size", 3));
  for (int i = 0; i < 3; ++i) {
    DS_TRY(Positive(c, "patch_size", patch[i]));
    w.patch[i] = static_cast<int>(patch[i]);
  }
  DS_ASSIGN_OR_RETURN(w.heads, c.Get<int>("num_attention_heads"));
  DS_ASSIGN_OR_RETURN(w.head_dim, c.Get<int>("attention_head_dim"));
  DS_ASSIGN_OR_RETURN(w.layers, c.Get<int>("num_layers"));
  DS_ASSIGN_OR_RETURN(w.ffn, c.Get<int>("ffn_dim"));
  DS_ASSIGN_OR_RETURN(w.in_channels, c.Get<int>("in_channels"));
  DS_ASSIGN_OR_RETURN(w.out_channels, c.GetOr<int>("out_channels", w.in_channels));
  DS_ASSIGN_OR_RETURN(w.text_dim, c.Get<int>("text_dim"));
  DS_ASSIGN_OR_RETURN(w.freq_dim, c.GetOr<int>("freq_dim", 256));
  DS_ASSIGN_OR_RETURN(w.cross_attn_norm, c.GetOr<bool>("cross_attn_norm", true));
  DS_ASSIGN_OR_RETURN(w.eps, c.GetOr<float>("eps", 1e-6f));
  DS_ASSIGN_OR_RETURN(w.rope_max_seq_len, c.GetOr<int>("rope_max_seq_len", 1024));
  for (auto [key, v] : {std::pair<std::string_view, int>{"num_attention_heads", w.heads},
                        {"attention_head_dim", w.head_dim},
                        {"num_layers", w.layers},
                        {"ffn_dim", w.ffn},
                        {"in_channels", w.in_channels},
                        {"out_channels", w.out_channels},
                        {"text_dim", w.text_dim},
                        {"freq_dim", w.freq_dim},
                        {"rope_max_seq_len", w.rope_max_seq_len}}) {
    DS_TRY(Positive(c, key, v));
  }
  DS_TRY(CheckTransformerConfig(w, c.name()));
  DS_ASSIGN_OR_RETURN(std::string qk_norm, c.GetOr<std::string>("qk_norm", "rms_norm_across_heads"));
  if (qk_norm != "rms_norm_across_heads") {
    return Error(Code::kUnsupported, "{}: qk_norm '{}' is not supported (Wan2.1 uses 'rms_norm_across_heads')",
                 c.name(), qk_norm);
  }
  DS_TRY(RequireNull(c, "image_dim", "an image-to-video model"));
  DS_TRY(RequireNull(c, "added_kv_proj_dim", "an image-to-video model"));
  DS_TRY(RequireNull(c, "pos_embed_seq_len", "a first-last-frame model"));
  return w;
}

namespace {

// Size `i` of tensor `name`'s shape as a model size: it must exist and lie in [1, 2³¹): a file whose
// shapes say otherwise (a zero-size or scalar tensor) is malformed, not a model to build.
Result<int> ShapeDim(const std::string& file, const std::vector<int64_t>& shape, size_t i, const std::string& name) {
  if (i >= shape.size() || shape[i] <= 0 || shape[i] > std::numeric_limits<int>::max()) {
    return Error(Code::kModel, "{}: '{}' has shape [{}]: size {} must be a positive int", file, name,
                 fmt::join(shape, ", "), i);
  }
  return static_cast<int>(shape[i]);
}

}  // namespace

Result<WanTransformerConfig> WanTransformerConfigFromShapes(const Weights& weights, const std::string& p,
                                                            const Config* original_config) {
  WanTransformerConfig w;
  const std::string file = weights.checkpoint().path();
  const std::string pe_name = p + "patch_embedding.weight";
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> pe, weights.Shape(pe_name));
  if (pe.size() != 5) {
    return Error(Code::kModel, "{}: 'patch_embedding.weight' must have 5 dims, has {}", file, pe.size());
  }
  if (weights.Has(p + "img_emb.proj.0.weight") || weights.Has(p + "blocks.0.cross_attn.k_img.weight")) {
    return Error(Code::kUnsupported, "{}: an image-to-video Wan checkpoint; only text-to-video is supported", file);
  }
  DS_ASSIGN_OR_RETURN(const int dim, ShapeDim(file, pe, 0, pe_name));
  DS_ASSIGN_OR_RETURN(w.in_channels, ShapeDim(file, pe, 1, pe_name));
  for (int i = 0; i < 3; ++i) {
    DS_ASSIGN_OR_RETURN(w.patch[i], ShapeDim(file, pe, 2 + static_cast<size_t>(i), pe_name));
  }
  // Every published Wan2.1 model uses 128-wide heads; the original config stores only the count.
  w.heads = dim / 128;
  if (original_config != nullptr && original_config->Has("num_heads")) {
    DS_ASSIGN_OR_RETURN(w.heads, original_config->Get<int>("num_heads"));
  }
  if (w.heads <= 0 || dim % w.heads != 0 || (dim / w.heads) % 2 != 0 || dim / w.heads < 6) {
    return Error(Code::kModel, "{}: model width {} (patch_embedding.weight) does not split into {} heads{}", file, dim,
                 w.heads, original_config ? "" : " of width 128 (no config.json with num_heads beside it)");
  }
  w.head_dim = dim / w.heads;
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> ffn, weights.Shape(p + "blocks.0.ffn.0.weight"));
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> text, weights.Shape(p + "text_embedding.0.weight"));
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> time, weights.Shape(p + "time_embedding.0.weight"));
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> head, weights.Shape(p + "head.head.weight"));
  if (ffn.size() != 2 || text.size() != 2 || time.size() != 2 || head.size() != 2) {
    return Error(Code::kModel, "{}: unexpected shapes of ffn/text_embedding/time_embedding/head tensors", file);
  }
  DS_ASSIGN_OR_RETURN(w.ffn, ShapeDim(file, ffn, 0, p + "blocks.0.ffn.0.weight"));
  DS_ASSIGN_OR_RETURN(w.text_dim, ShapeDim(file, text, 1, p + "text_embedding.0.weight"));
  DS_ASSIGN_OR_RETURN(w.freq_dim, ShapeDim(file, time, 1, p + "time_embedding.0.weight"));
  DS_ASSIGN_OR_RETURN(const int head_rows, ShapeDim(file, head, 0, p + "head.head.weight"));
  const int64_t patch_volume = static_cast<int64_t>(w.patch[0]) * w.patch[1] * w.patch[2];
  if (patch_volume > std::numeric_limits<int>::max() || head_rows % patch_volume != 0) {
    return Error(Code::kModel, "{}: 'head.head.weight' has {} rows, not a whole number of {}x{}x{} patches", file,
                 head_rows, w.patch[0], w.patch[1], w.patch[2]);
  }
  w.out_channels = static_cast<int>(head_rows / patch_volume);
  w.layers = 0;
  while (weights.Has(p + "blocks." + std::to_string(w.layers) + ".modulation")) ++w.layers;
  if (w.layers == 0) return Error(Code::kModel, "{}: no 'blocks.0.modulation' tensor", file);
  w.cross_attn_norm = weights.Has(p + "blocks.0.norm3.weight");
  if (original_config != nullptr && original_config->Has("eps")) {
    DS_ASSIGN_OR_RETURN(w.eps, original_config->Get<float>("eps"));
  }
  DS_TRY(CheckTransformerConfig(w, file));
  return w;
}

Result<WanVaeConfig> ParseWanVaeConfig(const Config& c) {
  WanVaeConfig v;
  DS_ASSIGN_OR_RETURN(v.base_dim, c.GetOr<int>("base_dim", 96));
  const nlohmann::json& doc = c.document();
  if (auto it = doc.find("decoder_base_dim"); it != doc.end() && !it->is_null()) {
    DS_ASSIGN_OR_RETURN(v.base_dim, c.Get<int>("decoder_base_dim"));
  }
  DS_ASSIGN_OR_RETURN(v.z_dim, c.GetOr<int>("z_dim", 16));
  DS_ASSIGN_OR_RETURN(v.num_res_blocks, c.GetOr<int>("num_res_blocks", 2));
  DS_ASSIGN_OR_RETURN(v.out_channels, c.GetOr<int>("out_channels", 3));
  for (auto [key, x] : {std::pair<std::string_view, int>{"base_dim", v.base_dim},
                        {"z_dim", v.z_dim},
                        {"num_res_blocks", v.num_res_blocks},
                        {"out_channels", v.out_channels}}) {
    DS_TRY(Positive(c, key, x));
  }
  if (c.Has("dim_mult")) {
    DS_ASSIGN_OR_RETURN(std::vector<int64_t> m, c.GetIntArray("dim_mult"));
    v.dim_mult.assign(m.begin(), m.end());
  }
  if (c.Has("temperal_downsample")) {
    auto it = doc.find("temperal_downsample");
    v.temporal_downsample.clear();
    for (const auto& b : *it) {
      if (!b.is_boolean()) {
        return Error(Code::kModel, "{}: 'temperal_downsample' must be an array of booleans, got {}", c.name(),
                     DescribeJson(*it));
      }
      v.temporal_downsample.push_back(b.get<bool>());
    }
  }
  if (v.dim_mult.size() < 2 || v.temporal_downsample.size() != v.dim_mult.size() - 1) {
    return Error(Code::kModel, "{}: 'dim_mult' needs at least 2 entries and 'temperal_downsample' one fewer", c.name());
  }
  for (int m : v.dim_mult) {
    DS_TRY(Positive(c, "dim_mult", m));
    DS_TRY(ProductFitsInt(c.name(), "a decoder width (base_dim x dim_mult)", int64_t{v.base_dim} * m));
  }
  DS_ASSIGN_OR_RETURN(bool residual, c.GetOr<bool>("is_residual", false));
  if (residual) return Error(Code::kUnsupported, "{}: 'is_residual' VAE (Wan2.2) is not supported", c.name());
  DS_TRY(RequireNull(c, "patch_size", "a Wan2.2 VAE"));
  v.latents_mean = Wan21LatentsMean();
  v.latents_std = Wan21LatentsStd();
  for (auto [key, dst] : {std::pair<std::string_view, std::vector<float>*>{"latents_mean", &v.latents_mean},
                          {"latents_std", &v.latents_std}}) {
    if (!c.Has(key)) continue;
    DS_ASSIGN_OR_RETURN(std::vector<double> x, c.GetDoubleArray(key, static_cast<size_t>(v.z_dim)));
    // Floats the decoder divides by (std) and subtracts: finite as floats, the std's not zero.
    const bool is_std = key == "latents_std";
    for (double e : x) {
      if (!(std::fabs(e) <= std::numeric_limits<float>::max()) || (is_std && e == 0.0)) {
        return Error(Code::kModel, "{}: '{}' holds {}; each entry must be a finite float{}", c.name(), key, e,
                     is_std ? ", not zero" : "");
      }
    }
    dst->assign(x.begin(), x.end());
  }
  // Wan2.1's statistics stand in for either one missing, and only for its z_dim of 16.
  if (static_cast<int>(v.latents_mean.size()) != v.z_dim || static_cast<int>(v.latents_std.size()) != v.z_dim) {
    return Error(Code::kModel, "{}: 'latents_mean' and 'latents_std' of {} values each are needed for z_dim {}",
                 c.name(), v.z_dim, v.z_dim);
  }
  return v;
}

Result<WanVaeConfig> WanVaeConfigFromShapes(const Weights& w) {
  WanVaeConfig v;
  const std::string file = w.checkpoint().path();
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> head, w.Shape("decoder.head.0.gamma"));
  DS_ASSIGN_OR_RETURN(std::vector<int64_t> pq, w.Shape("conv2.weight"));
  DS_ASSIGN_OR_RETURN(v.base_dim, ShapeDim(file, head, 0, "decoder.head.0.gamma"));
  DS_ASSIGN_OR_RETURN(v.z_dim, ShapeDim(file, pq, 0, "conv2.weight"));
  v.latents_mean = Wan21LatentsMean();
  v.latents_std = Wan21LatentsStd();
  if (v.z_dim != static_cast<int>(v.latents_mean.size())) {
    return Error(Code::kUnsupported, "{}: a VAE with {} latent channels is not Wan2.1's (16)", w.checkpoint().path(),
                 v.z_dim);
  }
  return v;
}

Result<Umt5Config> ParseUmt5Config(const Config& c) {
  Umt5Config u;
  DS_ASSIGN_OR_RETURN(u.vocab, c.Get<int>("vocab_size"));
  DS_ASSIGN_OR_RETURN(u.d_model, c.Get<int>("d_model"));
  DS_ASSIGN_OR_RETURN(u.layers, c.Get<int>("num_layers"));
  DS_ASSIGN_OR_RETURN(u.heads, c.Get<int>("num_heads"));
  DS_ASSIGN_OR_RETURN(u.d_kv, c.Get<int>("d_kv"));
  DS_ASSIGN_OR_RETURN(u.d_ff, c.Get<int>("d_ff"));
  DS_ASSIGN_OR_RETURN(u.buckets, c.GetOr<int>("relative_attention_num_buckets", 32));
  DS_ASSIGN_OR_RETURN(u.max_distance, c.GetOr<int>("relative_attention_max_distance", 128));
  DS_ASSIGN_OR_RETURN(u.eps, c.GetOr<float>("layer_norm_epsilon", 1e-6f));
  for (auto [key, v] : {std::pair<std::string_view, int>{"vocab_size", u.vocab},
                        {"d_model", u.d_model},
                        {"num_layers", u.layers},
                        {"num_heads", u.heads},
                        {"d_kv", u.d_kv},
                        {"d_ff", u.d_ff},
                        {"relative_attention_max_distance", u.max_distance}}) {
    DS_TRY(Positive(c, key, v));
  }
  DS_TRY(ProductFitsInt(c.name(), "the attention width (num_heads x d_kv)", int64_t{u.heads} * u.d_kv));
  DS_TRY(Epsilon(c.name(), "layer_norm_epsilon", u.eps));
  if (u.buckets < 4 || u.buckets % 4 != 0) {
    return Error(Code::kModel, "{}: relative_attention_num_buckets must be a positive multiple of 4, got {}", c.name(),
                 u.buckets);
  }
  DS_ASSIGN_OR_RETURN(std::string ff, c.GetOr<std::string>("feed_forward_proj", "gated-gelu"));
  DS_ASSIGN_OR_RETURN(std::string act, c.GetOr<std::string>("dense_act_fn", "gelu_new"));
  if (ff != "gated-gelu" || (act != "gelu_new" && act != "gelu_pytorch_tanh")) {
    return Error(Code::kUnsupported,
                 "{}: feed_forward_proj '{}' with dense_act_fn '{}' is not supported (UMT5 uses gated-gelu, gelu_new)",
                 c.name(), ff, act);
  }
  return u;
}

namespace {
// A flow schedule's shift divides time: zero or below (or not finite) gives no schedule.
Status PositiveShift(const Config& c, const char* key, double shift) {
  if (std::isfinite(shift) && shift > 0) return Status::Ok();
  return Error(Code::kModel, "{}: {} must be positive, got {}", c.name(), key, shift);
}
}  // namespace

Result<WanSchedulerConfig> ParseWanSchedulerConfig(const Config& c) {
  WanSchedulerConfig s;
  DS_ASSIGN_OR_RETURN(std::string cls, c.Get<std::string>("_class_name"));
  DS_ASSIGN_OR_RETURN(s.train_timesteps, c.GetOr<int>("num_train_timesteps", 1000));
  DS_TRY(Positive(c, "num_train_timesteps", s.train_timesteps));
  if (cls == "FlowMatchEulerDiscreteScheduler") {
    s.kind = WanSchedulerConfig::Kind::kFlowEuler;
    DS_ASSIGN_OR_RETURN(s.shift, c.GetOr<double>("shift", 1.0));
    DS_TRY(PositiveShift(c, "shift", s.shift));
    return s;
  }
  if (cls != "UniPCMultistepScheduler") {
    return Error(Code::kUnsupported,
                 "{}: scheduler '{}' is not supported (UniPCMultistepScheduler or FlowMatchEulerDiscreteScheduler)",
                 c.name(), cls);
  }
  s.kind = WanSchedulerConfig::Kind::kUniPc;
  DS_ASSIGN_OR_RETURN(s.shift, c.GetOr<double>("flow_shift", 1.0));
  DS_TRY(PositiveShift(c, "flow_shift", s.shift));
  DS_ASSIGN_OR_RETURN(std::string prediction, c.GetOr<std::string>("prediction_type", "epsilon"));
  DS_ASSIGN_OR_RETURN(bool flow_sigmas, c.GetOr<bool>("use_flow_sigmas", false));
  DS_ASSIGN_OR_RETURN(int order, c.GetOr<int>("solver_order", 2));
  DS_ASSIGN_OR_RETURN(std::string solver, c.GetOr<std::string>("solver_type", "bh2"));
  DS_ASSIGN_OR_RETURN(bool x0, c.GetOr<bool>("predict_x0", true));
  DS_ASSIGN_OR_RETURN(bool lower_final, c.GetOr<bool>("lower_order_final", true));
  DS_ASSIGN_OR_RETURN(std::string final_sigmas, c.GetOr<std::string>("final_sigmas_type", "zero"));
  DS_ASSIGN_OR_RETURN(bool dynamic, c.GetOr<bool>("use_dynamic_shifting", false));
  DS_ASSIGN_OR_RETURN(bool thresholding, c.GetOr<bool>("thresholding", false));
  bool other_sigmas = false;  // these take precedence over flow sigmas in diffusers
  for (const char* key : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"}) {
    DS_ASSIGN_OR_RETURN(bool on, c.GetOr<bool>(key, false));
    other_sigmas = other_sigmas || on;
  }
  const nlohmann::json& doc = c.document();
  auto dc = doc.find("disable_corrector");
  const bool corrector = dc == doc.end() || dc->is_null() || (dc->is_array() && dc->empty());
  if (prediction != "flow_prediction" || !flow_sigmas || order != 2 || solver != "bh2" || !x0 || !lower_final ||
      final_sigmas != "zero" || dynamic || thresholding || !corrector || other_sigmas) {
    return Error(
        Code::kUnsupported,
        "{}: only the Wan UniPC setup is supported (flow_prediction, use_flow_sigmas, solver_order 2, bh2, "
        "predict_x0, lower_order_final, final_sigmas_type zero, no dynamic shifting/thresholding, corrector on)",
        c.name());
  }
  DS_TRY(RequireNull(c, "shift_terminal", "a terminal stretch"));
  return s;
}

}  // namespace ds
