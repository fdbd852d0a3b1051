#include "core/wan/wan_lora.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <system_error>
#include <thread>
#include <utility>

#include "core/safetensors.h"

namespace ds {
namespace {

// The module a key names, as one spelling: prefix dropped, dots as underscores
// ("diffusion_model.blocks.0.self_attn.q" and "lora_unet_blocks_0_self_attn_q" → "blocks_0_self_attn_q").
std::string ModuleKey(std::string_view module) {
  static constexpr std::array<std::string_view, 7> kPrefixes = {"base_model.model.",
                                                                "model.diffusion_model.",
                                                                "diffusion_model.",
                                                                "transformer.",
                                                                "lora_unet_",
                                                                "lora_transformer_",
                                                                "unet."};
  for (std::string_view prefix : kPrefixes) {
    if (module.starts_with(prefix)) {
      module.remove_prefix(prefix.size());
      break;
    }
  }
  std::string key(module);
  std::replace(key.begin(), key.end(), '.', '_');
  return key;
}

enum class Part { kDown, kUp, kAlpha, kDiff, kDiffBias, kDiffModulation };

struct Suffix {
  std::string_view text;
  Part part;
};
// `.diff_m` (LightX2V's distillation LoRAs): the delta of the block's modulation table.
constexpr std::array<Suffix, 8> kSuffixes = {{{".lora_down.weight", Part::kDown},
                                              {".lora_up.weight", Part::kUp},
                                              {".lora_A.weight", Part::kDown},
                                              {".lora_B.weight", Part::kUp},
                                              {".alpha", Part::kAlpha},
                                              {".diff_b", Part::kDiffBias},
                                              {".diff_m", Part::kDiffModulation},
                                              {".diff", Part::kDiff}}};

// Adapter kinds other than LoRA that share its files: named, so the error says what the file is.
constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kOtherAdapters = {{{".lora_mid.weight", "LoCon"},
                                                                                          {".dora_scale", "DoRA"},
                                                                                          {".hada_w1_a", "LoHa"},
                                                                                          {".lokr_w1", "LoKr"},
                                                                                          {".oft_blocks", "OFT"}}};

struct Module {
  std::string key;  // one of its keys as stored, for messages
  const SafetensorsEntry* down = nullptr;
  const SafetensorsEntry* up = nullptr;
  const SafetensorsEntry* alpha = nullptr;
  const SafetensorsEntry* diff = nullptr;
  const SafetensorsEntry* diff_b = nullptr;
  bool used_weight = false, used_bias = false;
};

struct File {
  std::string path;
  double strength = 1.0;
  std::unique_ptr<SafetensorsFile> tensors;
  std::map<std::string, Module, std::less<>> modules;  // by ModuleKey
};

Result<std::vector<float>> ToF32(const File& f, const SafetensorsEntry& e) {
  std::vector<float> out(static_cast<size_t>(e.numel()));
  const Status s = ConvertToF32(e, out.data());
  if (!s.ok()) return Error(Code::kModel, "LoRA {}: tensor '{}': {}", f.path, e.name, s.message());
  return out;
}

Status CheckModule(const File& f, const Module& m) {
  if ((m.down == nullptr) != (m.up == nullptr)) {
    const SafetensorsEntry* half = m.down ? m.down : m.up;
    return Error(Code::kModel, "LoRA {}: '{}' has no {} half", f.path, half->name, m.down ? "up (B)" : "down (A)");
  }
  if (m.alpha != nullptr && m.down == nullptr) {
    return Error(Code::kModel, "LoRA {}: '{}' scales no low-rank pair", f.path, m.alpha->name);
  }
  if (m.alpha != nullptr && m.alpha->numel() != 1) {
    return Error(Code::kModel, "LoRA {}: '{}' has shape {}: an alpha is one number", f.path, m.alpha->name,
                 m.alpha->shape_string());
  }
  for (const SafetensorsEntry* e : {m.down, m.up, m.alpha, m.diff, m.diff_b}) {
    if (e != nullptr && !FloatDType(e->dtype)) {
      return Error(Code::kModel, "LoRA {}: '{}' is {}: LoRA tensors are F32, F16, BF16 or F8", f.path, e->name,
                   StDTypeName(e->dtype));
    }
  }
  if (m.down == nullptr) return Status::Ok();
  const int64_t rank = m.down->shape.empty() ? 0 : m.down->shape[0];
  bool up_ok = m.up->shape.size() >= 2 && m.up->shape[1] == rank;
  for (size_t i = 2; up_ok && i < m.up->shape.size(); ++i) up_ok = m.up->shape[i] == 1;
  if (m.down->shape.size() < 2 || rank <= 0 || !up_ok) {
    return Error(Code::kModel,
                 "LoRA {}: '{}' {} and '{}' {} are not a low-rank pair (down [rank, in…], up [out, rank])", f.path,
                 m.down->name, m.down->shape_string(), m.up->name, m.up->shape_string());
  }
  return Status::Ok();
}

Result<File> OpenFile(const LoraSpec& spec) {
  File f;
  f.path = spec.path;
  f.strength = spec.strength;
  Result<std::unique_ptr<SafetensorsFile>> st = SafetensorsFile::Open(spec.path);
  if (!st.ok()) return Status(st.status().code(), fmt::format("LoRA: {}", st.status().message()));
  f.tensors = std::move(*st);
  for (const std::string& name : f.tensors->names()) {
    const SafetensorsEntry* e = f.tensors->find(name);
    for (const auto& [suffix, kind] : kOtherAdapters) {
      if (name.ends_with(suffix)) {
        return Error(Code::kUnsupported, "LoRA {}: '{}' belongs to a {} adapter; only LoRA (and full diffs) load",
                     f.path, name, kind);
      }
    }
    const Suffix* match = nullptr;
    for (const Suffix& s : kSuffixes) {
      if (name.ends_with(s.text)) {
        match = &s;
        break;
      }
    }
    if (match == nullptr) {
      return Error(Code::kModel,
                   "LoRA {}: '{}' is not a LoRA tensor (keys end in .lora_down.weight/.lora_up.weight, "
                   ".lora_A.weight/.lora_B.weight, .alpha, .diff, .diff_b or .diff_m)",
                   f.path, name);
    }
    std::string module = name.substr(0, name.size() - match->text.size());
    if (match->part == Part::kDiffModulation) module += ".modulation";
    Module& m = f.modules[ModuleKey(module)];
    if (m.key.empty()) m.key = name;
    const SafetensorsEntry** slot = match->part == Part::kDown       ? &m.down
                                    : match->part == Part::kUp       ? &m.up
                                    : match->part == Part::kAlpha    ? &m.alpha
                                    : match->part == Part::kDiffBias ? &m.diff_b
                                                                     : &m.diff;
    if (*slot != nullptr) {
      return Error(Code::kModel, "LoRA {}: '{}' and '{}' change the same tensor", f.path, (*slot)->name, name);
    }
    *slot = e;
  }
  if (f.modules.empty()) return Error(Code::kModel, "LoRA {}: the file holds no tensor", f.path);
  for (const auto& [key, m] : f.modules) DS_TRY(CheckModule(f, m));
  return f;
}

// w[r0..r1, cols] += scale · up[rows, rank] · down[rank, cols], each row's delta summed in a buffer
// of its own first (W + s·(B·A), as PyTorch merges). Columns go in blocks whose slice of `down`
// stays in L1 (32 KB) while every row passes over it. On x86-64 an AVX2 clone runs where the CPU
// has it: twice the lanes, the same bits (each element's sum keeps its order, nothing contracts
// into an FMA under ISO C++).
#if defined(__x86_64__) && defined(__GNUC__)
[[gnu::target_clones("avx2", "default")]]
#endif
void AddLowRankRows(float* w, int64_t r0, int64_t r1, int64_t cols, const float* up, const float* down, int64_t rank,
                    float scale) {
  const int64_t block = std::max<int64_t>(64, 8192 / rank);
  std::vector<float> delta(static_cast<size_t>(block));
  for (int64_t c0 = 0; c0 < cols; c0 += block) {
    const int64_t n = std::min(block, cols - c0);
    for (int64_t o = r0; o < r1; ++o) {
      float* acc = delta.data();
      std::fill_n(acc, n, 0.0f);
      for (int64_t k = 0; k < rank; ++k) {
        const float a = up[o * rank + k];
        const float* d = down + k * cols + c0;
        for (int64_t i = 0; i < n; ++i) acc[i] += a * d[i];
      }
      float* row = w + o * cols + c0;
      for (int64_t i = 0; i < n; ++i) row[i] += scale * acc[i];
    }
  }
}

// The rows split over the cores (a 14B's rank-64 LoRA is about 2 TFLOP); where no thread can be
// started, this one does the rest.
void AddLowRank(float* w, int64_t rows, int64_t cols, const float* up, const float* down, int64_t rank, float scale) {
  const int64_t threads =
      std::clamp<int64_t>((rows * cols * rank) >> 22, 1, std::max<int64_t>(1, std::thread::hardware_concurrency()));
  const int64_t per = (rows + threads - 1) / threads;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  int64_t r0 = 0;
  try {
    for (; threads > 1 && r0 < rows; r0 += per) {
      pool.emplace_back(AddLowRankRows, w, r0, std::min(rows, r0 + per), cols, up, down, rank, scale);
    }
  } catch (const std::system_error&) {
  }
  if (r0 < rows) AddLowRankRows(w, r0, rows, cols, up, down, rank, scale);
  for (std::thread& t : pool) t.join();
}

// The module a model tensor belongs to and which of its parts the tensor is.
struct Target {
  std::string module, original_module;
  enum { kWeight, kBias, kParameter } part;
};

Target TargetOf(std::string_view name, std::string_view original) {
  for (auto [suffix, part] : {std::pair{std::string_view(".weight"), Target::kWeight}, {".bias", Target::kBias}}) {
    if (name.ends_with(suffix) && original.ends_with(suffix)) {
      return {ModuleKey(name.substr(0, name.size() - suffix.size())),
              ModuleKey(original.substr(0, original.size() - suffix.size())), part};
    }
  }
  return {ModuleKey(name), ModuleKey(original), Target::kParameter};
}

Module* FindModule(File& f, const Target& t) {
  auto it = f.modules.find(t.module);
  if (it == f.modules.end()) it = f.modules.find(t.original_module);
  return it == f.modules.end() ? nullptr : &it->second;
}

bool Changes(const Module& m, const Target& t) {
  switch (t.part) {
    case Target::kWeight:
      return m.down != nullptr || m.diff != nullptr;
    case Target::kBias:
      return m.diff_b != nullptr;
    case Target::kParameter:
      return m.diff != nullptr;
  }
  return false;
}

}  // namespace

struct WanLora::Files {
  std::vector<File> files;
};

WanLora::WanLora() : files_(std::make_unique<Files>()) {}
WanLora::WanLora(WanLora&&) noexcept = default;
WanLora& WanLora::operator=(WanLora&&) noexcept = default;
WanLora::~WanLora() = default;

Result<WanLora> WanLora::Open(const std::vector<LoraSpec>& specs) {
  WanLora lora;
  for (const LoraSpec& spec : specs) {
    DS_ASSIGN_OR_RETURN(File f, OpenFile(spec));
    lora.files_->files.push_back(std::move(f));
  }
  return lora;
}

bool WanLora::empty() const { return files_->files.empty(); }

bool WanLora::Touches(std::string_view name, std::string_view original) const {
  const Target t = TargetOf(name, original);
  for (File& f : files_->files) {
    if (const Module* m = FindModule(f, t); m != nullptr && Changes(*m, t)) return true;
  }
  return false;
}

Status WanLora::Apply(std::string_view name, std::string_view original, const Tensor& w) {
  const Target t = TargetOf(name, original);
  const int64_t rows = w.ndim > 0 ? w.shape[0] : 1, n = w.numel(), cols = rows > 0 ? n / rows : 0;
  const std::vector<int64_t> shape(w.shape, w.shape + w.ndim);
  for (File& f : files_->files) {
    Module* m = FindModule(f, t);
    if (m == nullptr || !Changes(*m, t)) continue;
    const float strength = static_cast<float>(f.strength);
    const SafetensorsEntry* full = t.part == Target::kBias ? m->diff_b : m->diff;
    if (full != nullptr) {
      if (full->shape != shape && !(full->numel() == n && t.part != Target::kWeight)) {
        return Error(Code::kModel, "LoRA {}: '{}' has shape {} but the model's '{}' is [{}]", f.path, full->name,
                     full->shape_string(), original, fmt::join(shape, ", "));
      }
      DS_ASSIGN_OR_RETURN(std::vector<float> d, ToF32(f, *full));
      for (int64_t i = 0; i < n; ++i) w.f32()[i] += strength * d[static_cast<size_t>(i)];
    }
    if (t.part == Target::kWeight && m->down != nullptr) {
      const int64_t rank = m->down->shape[0];
      if (m->up->shape[0] != rows || m->down->numel() != rank * cols) {
        return Error(Code::kModel, "LoRA {}: '{}' {} and '{}' {} do not fit the model's '{}' [{}]", f.path,
                     m->down->name, m->down->shape_string(), m->up->name, m->up->shape_string(), original,
                     fmt::join(shape, ", "));
      }
      DS_ASSIGN_OR_RETURN(std::vector<float> down, ToF32(f, *m->down));
      DS_ASSIGN_OR_RETURN(std::vector<float> up, ToF32(f, *m->up));
      float scale = strength;
      if (m->alpha != nullptr) {
        DS_ASSIGN_OR_RETURN(std::vector<float> alpha, ToF32(f, *m->alpha));
        scale *= alpha[0] / static_cast<float>(rank);
      }
      AddLowRank(w.f32(), rows, cols, up.data(), down.data(), rank, scale);
    }
    (t.part == Target::kBias ? m->used_bias : m->used_weight) = true;
  }
  return Status::Ok();
}

Status WanLora::CheckAllUsed() const {
  for (const File& f : files_->files) {
    for (const auto& [key, m] : f.modules) {
      const bool weight_unused = (m.down != nullptr || m.diff != nullptr) && !m.used_weight;
      if (weight_unused || (m.diff_b != nullptr && !m.used_bias)) {
        return Error(Code::kModel,
                     "LoRA {}: '{}' matches no tensor of this Wan transformer (a LoRA for another model, e.g. "
                     "another size or image-to-video?)",
                     f.path, m.key);
      }
    }
  }
  return Status::Ok();
}

}  // namespace ds
