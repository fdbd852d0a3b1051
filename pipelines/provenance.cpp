#include "pipelines/provenance.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <filesystem>
#include <string_view>

namespace ds {
namespace {

// "…/models/wan2.1-t2v-1.3b/" → "wan2.1-t2v-1.3b"; "." or "../x/.." → the folder they name. The
// name as given, not a symlink's target (a Hugging Face snapshot folder is a commit hash).
std::string ModelName(std::string_view model) {
  namespace fs = std::filesystem;
  fs::path path(model);
  if (model.find('/') != std::string_view::npos || model.starts_with(".")) {
    std::error_code ec;
    const fs::path absolute = fs::absolute(path, ec);
    if (!ec) path = absolute;
  }
  path = path.lexically_normal();
  if (!path.has_filename()) path = path.parent_path();
  return path.filename().string();
}

// The LoRAs by file name and strength, as ParseLoras reads them (never their folders).
nlohmann::ordered_json LoraRecord(const std::string& option) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  const Result<std::vector<LoraSpec>> loras = ParseLoras(option);
  if (!loras.ok()) return list;
  for (const LoraSpec& l : *loras) {
    list.push_back({{"name", std::filesystem::path(l.path).filename().string()}, {"strength", l.strength}});
  }
  return list;
}

std::string LoraNames(const std::string& option) {
  std::string out;
  for (const auto& l : LoraRecord(option)) {
    out += fmt::format("{}{}={}", out.empty() ? "" : ",", l["name"].get<std::string>(), l["strength"].get<double>());
  }
  return out;
}

// A number GetOption wrote; from_chars, as options.cpp parses, so a host's locale cannot change it.
template <class T>
T Number(const std::string& text) {
  T v{};
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

}  // namespace

std::string ProvenanceJson(const Options& opts, const ModelInfo& info, const OutputShape& shape, const char* device,
                           int threads) {
  const Sampling s = ResolveSampling(opts, info);
  nlohmann::ordered_json j;
  j["generator"] = "ditstream " DS_VERSION;
  j["ai_generated"] = true;
  j["model"] = {{"name", ModelName(opts.model)}, {"family", info.family}};
  j["loras"] = LoraRecord(opts.lora);
  if (!opts.lora_2.empty()) j["loras_2"] = LoraRecord(opts.lora_2);  // a two-stage model's transformer_2
  j["prompt"] = opts.prompt;
  j["negative_prompt"] = opts.negative_prompt;
  j["seed"] = opts.seed;
  j["steps"] = s.steps;
  j["guidance"] = s.guidance;
  if (info.two_stage) j["guidance_2"] = s.guidance_2;  // the low-noise transformer's
  j["shift"] = s.shift;
  j["sampler"] = SamplerName(s.sampler);
  j["width"] = shape.width;
  j["height"] = shape.height;
  j["frames"] = shape.frames;
  j["fps"] = opts.fps > 0 ? opts.fps : static_cast<double>(info.fps);
  j["device"] = device;
  // The threads the backend runs (the option's 0 means all cores, which differ between machines):
  // on the CPU, how the work is split can change the last bit of a few pixels.
  j["threads"] = threads;
  // The table as set (sentinels included), typed as the table types it; the model and LoRA options
  // keep only file names, like "model" and "loras" above.
  nlohmann::ordered_json& table = j["options"];
  for (const ds_option_info& o : OptionTable()) {
    const Result<std::string> text = GetOption(opts, o.name);
    if (!text.ok()) continue;
    if (std::string_view(o.name) == "model") {
      table[o.name] = ModelName(*text);
    } else if (std::string_view(o.name) == "lora" || std::string_view(o.name) == "lora-2") {
      table[o.name] = LoraNames(*text);
    } else if (o.type == DS_OPT_STRING) {
      table[o.name] = *text;
    } else if (o.type == DS_OPT_INT) {
      table[o.name] = Number<int64_t>(*text);
    } else {
      table[o.name] = Number<double>(*text);
    }
  }
  // Invalid UTF-8 in a prompt becomes U+FFFD rather than an exception.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace ds
