#include "core/wan/wan_model.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "core/config.h"
#include "core/log.h"

namespace ds {
namespace {

namespace fs = std::filesystem;

// The components a Wan2.1 T2V folder must declare, with the classes this engine implements.
struct Component {
  const char* name;
  std::vector<std::string_view> classes;
};
const Component kComponents[] = {
    {"tokenizer", {"T5TokenizerFast", "T5Tokenizer", "AutoTokenizer"}},
    {"text_encoder", {"UMT5EncoderModel"}},
    {"transformer", {"WanTransformer3DModel"}},
    {"vae", {"AutoencoderKLWan"}},
    {"scheduler", {"UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler"}},
};

Status CheckComponent(const Config& index, const std::string& folder, const Component& c) {
  const nlohmann::json& doc = index.document();
  auto it = doc.find(c.name);
  if (it == doc.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_string()) {
    return Error(Code::kModel, "{}: component '{}' is missing (expected [library, class])", index.name(), c.name);
  }
  const std::string cls = (*it)[1].get<std::string>();
  if (std::find(c.classes.begin(), c.classes.end(), cls) == c.classes.end()) {
    return Error(Code::kUnsupported, "{}: component '{}' is a {}, which this engine does not implement", index.name(),
                 c.name, cls);
  }
  std::error_code ec;
  const fs::path dir = fs::path(folder) / c.name;
  if (!fs::is_directory(dir, ec)) {
    return Error(Code::kModel, "{}: folder of component '{}' ({}) does not exist", dir.string(), c.name, cls);
  }
  return Status::Ok();
}

}  // namespace

bool WanModel::IsWanFolder(const std::string& folder) {
  Result<Config> c = Config::Load((fs::path(folder) / "model_index.json").string());
  if (!c.ok()) return false;
  Result<std::string> cls = c->GetOr<std::string>("_class_name", "");
  return cls.ok() && cls->starts_with("Wan");
}

Result<std::unique_ptr<WanModel>> WanModel::Load(const std::string& folder, const std::vector<LoraSpec>& loras,
                                                 const std::vector<LoraSpec>& loras_2) {
  const std::string index_path = (fs::path(folder) / "model_index.json").string();
  std::error_code ec;
  if (!fs::is_regular_file(index_path, ec)) {
    return Error(Code::kModel,
                 "{}: unknown model layout: no model_index.json (a Wan model is a diffusers folder with "
                 "model_index.json, tokenizer/, text_encoder/, transformer/, vae/ and scheduler/)",
                 folder);
  }
  DS_ASSIGN_OR_RETURN(Config index, Config::Load(index_path));
  DS_ASSIGN_OR_RETURN(std::string cls, index.Get<std::string>("_class_name"));
  if (cls != "WanPipeline") {
    return Error(Code::kUnsupported, "{}: pipeline '{}' is not supported (only WanPipeline, Wan2.1 text-to-video)",
                 index_path, cls);
  }
  const nlohmann::json& doc = index.document();
  // Wan2.2's two-stage models declare both a second transformer and the boundary between them.
  auto set = [&](const char* key) {
    auto it = doc.find(key);
    return !(it == doc.end() || it->is_null() || (it->is_array() && (it->empty() || (*it)[0].is_null())));
  };
  const bool two_stage = set("transformer_2");
  if (two_stage != set("boundary_ratio")) {
    return Error(Code::kModel, "{}: '{}' is set without '{}' (a Wan2.2 two-stage model declares both)", index_path,
                 two_stage ? "transformer_2" : "boundary_ratio", two_stage ? "boundary_ratio" : "transformer_2");
  }
  double boundary_ratio = 0;
  if (two_stage) {
    const nlohmann::json& b = doc["boundary_ratio"];
    if (!b.is_number() || !(b.get<double>() > 0 && b.get<double>() < 1)) {
      return Error(Code::kModel, "{}: 'boundary_ratio' must be a number between 0 and 1, got {}", index_path, b.dump());
    }
    boundary_ratio = b.get<double>();
    DS_TRY(CheckComponent(index, folder, {"transformer_2", {"WanTransformer3DModel"}}));
  } else if (!loras_2.empty()) {
    return Error(Code::kInvalidArgument,
                 "{}: option 'lora-2' names LoRA files for a second transformer, which this model does not have "
                 "(only Wan2.2's two-stage models do; use 'lora')",
                 folder);
  }
  DS_ASSIGN_OR_RETURN(bool expand, index.GetOr<bool>("expand_timesteps", false));
  if (expand) return Error(Code::kUnsupported, "{}: 'expand_timesteps' (Wan2.2 TI2V) is not supported", index_path);
  for (const Component& c : kComponents) DS_TRY(CheckComponent(index, folder, c));

  const fs::path dir(folder);
  DS_ASSIGN_OR_RETURN(Config sched, Config::Load((dir / "scheduler" / "scheduler_config.json").string()));
  DS_ASSIGN_OR_RETURN(WanSchedulerConfig scheduler, ParseWanSchedulerConfig(sched));
  DS_ASSIGN_OR_RETURN(WanTokenizer tokenizer, WanTokenizer::Load((dir / "tokenizer").string()));
  DS_ASSIGN_OR_RETURN(Umt5Encoder text, Umt5Encoder::Load((dir / "text_encoder").string()));
  DS_ASSIGN_OR_RETURN(WanTransformer transformer, WanTransformer::Load((dir / "transformer").string(), loras));
  DS_ASSIGN_OR_RETURN(WanVaeDecoder vae, WanVaeDecoder::Load((dir / "vae").string()));
  if (text.config().d_model != transformer.config().text_dim) {
    return Error(Code::kModel, "{}: the text encoder's width {} differs from the transformer's text_dim {}", folder,
                 text.config().d_model, transformer.config().text_dim);
  }
  if (vae.config().z_dim != transformer.config().in_channels ||
      vae.config().z_dim != transformer.config().out_channels) {
    return Error(Code::kModel, "{}: the VAE's {} latent channels differ from the transformer's {} in / {} out", folder,
                 vae.config().z_dim, transformer.config().in_channels, transformer.config().out_channels);
  }
  if (tokenizer.vocab_size() > text.config().vocab) {
    return Error(Code::kModel, "{}: the tokenizer's {} pieces exceed the text encoder's vocabulary of {}", folder,
                 tokenizer.vocab_size(), text.config().vocab);
  }
  std::unique_ptr<WanModel> model(
      new WanModel(folder, std::move(tokenizer), std::move(text), std::move(transformer), std::move(vae), scheduler));
  if (two_stage) {
    DS_ASSIGN_OR_RETURN(WanTransformer second, WanTransformer::Load((dir / "transformer_2").string(), loras_2));
    const WanTransformerConfig &a = model->transformer_.config(), &b = second.config();
    // Info() bounds the sizes by the first transformer's RoPE table: the second must take them too.
    if (a.in_channels != b.in_channels || a.out_channels != b.out_channels || a.text_dim != b.text_dim ||
        a.patch != b.patch || a.rope_max_seq_len != b.rope_max_seq_len) {
      return Error(Code::kModel,
                   "{}: transformer_2 takes other inputs than transformer ({} / {} channels, text {}, patch {}x{}x{}, "
                   "{} RoPE positions against {} / {}, {}, {}x{}x{}, {})",
                   folder, b.in_channels, b.out_channels, b.text_dim, b.patch[0], b.patch[1], b.patch[2],
                   b.rope_max_seq_len, a.in_channels, a.out_channels, a.text_dim, a.patch[0], a.patch[1], a.patch[2],
                   a.rope_max_seq_len);
    }
    model->transformer_2_ = std::make_unique<WanTransformer>(std::move(second));
    model->boundary_ratio_ = boundary_ratio;
  }
  return model;
}

Result<std::array<int, 4>> WanModel::LatentShape(int width, int height, int frames) const {
  const WanVaeConfig& v = vae_.config();
  const int spatial = v.spatial_factor() * transformer_.config().patch[1], temporal = v.temporal_factor();
  if (width <= 0 || height <= 0 || width % spatial != 0 || height % spatial != 0) {
    return Error(Code::kUnsupported, "Wan: {}x{} is not supported: width and height must be positive multiples of {}",
                 width, height, spatial);
  }
  if (frames < 1 || (frames - 1) % temporal != 0) {
    return Error(Code::kUnsupported, "Wan: {} frames is not supported: use {}k + 1 frames (e.g. 81)", frames, temporal);
  }
  return std::array<int, 4>{v.z_dim, (frames - 1) / temporal + 1, height / v.spatial_factor(),
                            width / v.spatial_factor()};
}

Status WanModel::EncodePrompt(Backend& be, std::string_view prompt, int text_len, std::vector<float>& out) {
  DS_ASSIGN_OR_RETURN(std::vector<int> ids, tokenizer_.Encode(prompt, text_len));
  std::vector<float> hidden;
  DS_TRY(text_.Encode(be, ids, hidden));
  out.assign(static_cast<size_t>(text_len) * text_.config().d_model, 0.0f);
  std::copy(hidden.begin(), hidden.end(), out.begin());
  return Status::Ok();
}

}  // namespace ds
