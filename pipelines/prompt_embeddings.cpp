#include "pipelines/prompt_embeddings.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "core/text_file.h"

namespace ds {
namespace {

constexpr const char* kFormat = "ditstream.prompt_embeddings";

}  // namespace

Status WritePromptEmbeddings(const std::string& path, const PromptEmbeddings& e) {
  const size_t count = static_cast<size_t>(e.rows) * e.cols;
  if (e.rows <= 0 || e.cols <= 0 || e.cond.size() != count || e.uncond.size() != count) {
    return Error(Code::kInternal, "prompt embeddings of {} x {} hold {} and {} values", e.rows, e.cols, e.cond.size(),
                 e.uncond.size());
  }
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {
      {"format", kFormat}, {"family", e.family}, {"prompt", e.prompt}, {"negative_prompt", e.negative_prompt}};
  const size_t bytes = count * sizeof(float);
  header["prompt"] = {{"dtype", "F32"}, {"shape", {e.rows, e.cols}}, {"data_offsets", {0, bytes}}};
  header["negative_prompt"] = {{"dtype", "F32"}, {"shape", {e.rows, e.cols}}, {"data_offsets", {bytes, 2 * bytes}}};
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');

  const uint64_t len = text.size();
  auto bytes_of = [](const void* p, size_t n) { return std::string_view(static_cast<const char*>(p), n); };
  return WriteFileAtomically(
      path, {bytes_of(&len, sizeof len), text, bytes_of(e.cond.data(), bytes), bytes_of(e.uncond.data(), bytes)});
}

Result<PromptEmbeddings> ReadPromptEmbeddings(const std::string& path, const std::string& family, int rows, int cols) {
  DS_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  const auto& meta = file->metadata();
  auto field = [&](const char* key) -> std::string {
    auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  };
  if (field("format") != kFormat) {
    return Error(Code::kInvalidArgument, "{}: not a prompt-embeddings file (metadata format is \"{}\", want \"{}\")",
                 path, field("format"), kFormat);
  }
  if (field("family") != family) {
    return Error(Code::kInvalidArgument, "{}: embeddings of a {} model, the loaded model is {}", path, field("family"),
                 family);
  }
  PromptEmbeddings e;
  e.family = family;
  e.prompt = field("prompt");
  e.negative_prompt = field("negative_prompt");
  e.rows = rows;
  e.cols = cols;
  for (auto [name, out] : {std::pair{"prompt", &e.cond}, std::pair{"negative_prompt", &e.uncond}}) {
    const SafetensorsEntry* t = file->find(name);
    if (t == nullptr) return Error(Code::kInvalidArgument, "{}: no tensor \"{}\"", path, name);
    if (t->shape != std::vector<int64_t>{rows, cols}) {
      return Error(Code::kInvalidArgument, "{}: \"{}\" is {}, the loaded model needs [{}, {}]", path, name,
                   t->shape_string(), rows, cols);
    }
    out->resize(static_cast<size_t>(rows) * cols);
    DS_TRY(ConvertToF32(*t, out->data()));
    // A NaN or infinity would reach every frame of every clip as black or noise: a corrupt file.
    if (auto bad = std::find_if(out->begin(), out->end(), [](float v) { return !std::isfinite(v); });
        bad != out->end()) {
      const size_t at = static_cast<size_t>(bad - out->begin());
      return Error(Code::kInvalidArgument, "{}: \"{}\" holds {} at row {}, column {}: embeddings must be finite", path,
                   name, *bad, at / static_cast<size_t>(cols), at % static_cast<size_t>(cols));
    }
  }
  if (e.prompt.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Error(Code::kInvalidArgument, "{}: the metadata has no prompt", path);
  }
  // One text has one embedding: a file that gives the same text two would make the cache keep one.
  if (e.prompt == e.negative_prompt && e.cond != e.uncond) {
    return Error(Code::kInvalidArgument, "{}: the prompt and the negative prompt are one text with two embeddings",
                 path);
  }
  return e;
}

}  // namespace ds
