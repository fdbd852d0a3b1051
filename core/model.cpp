#include "core/model.h"

#include <filesystem>

#include "core/config.h"
#include "core/log.h"

namespace ds {

Result<std::unique_ptr<Model>> Model::Load(const std::string& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    return Error(Code::kIo, "model '{}' is not a folder (expected config.json, model.safetensors, vocab.txt)", folder);
  }
  DS_ASSIGN_OR_RETURN(Config cfg, Config::Load((fs::path(folder) / "config.json").string()));
  DS_ASSIGN_OR_RETURN(ModelConfig mc, ParseModelConfig(cfg));
  if (mc.family != "demo") {
    return Error(Code::kUnsupported, "{}: model family '{}' is not supported by this build (supported: demo)",
                 folder, mc.family);
  }
  DS_ASSIGN_OR_RETURN(Weights weights, Weights::Open((fs::path(folder) / "model.safetensors").string()));
  std::unique_ptr<Model> m(new Model(std::move(weights)));
  m->folder_ = folder;
  m->config_ = mc;
  DS_ASSIGN_OR_RETURN(m->tokenizer_, WordTokenizer::Load((fs::path(folder) / mc.text.vocab).string()));
  DS_ASSIGN_OR_RETURN(m->text_, TextEncoder::Load(mc.text, m->tokenizer_.vocab_size(), m->weights_));
  DS_ASSIGN_OR_RETURN(m->dit_, Dit::Load(mc.dit, m->weights_));
  DS_ASSIGN_OR_RETURN(m->decoder_, FrameDecoder::Load(mc.decoder, mc.latent_channels, m->weights_));
  for (const std::string& name : m->weights_.Unused()) {
    Log(LogLevel::kWarning, "{}: tensor '{}' is not used by the {} model", folder, name, mc.family);
  }
  return m;
}

}  // namespace ds
