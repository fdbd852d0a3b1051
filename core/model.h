// A loaded model folder: config, tokenizer, text encoder, DiT and frame decoder.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/decoder.h"
#include "core/dit.h"
#include "core/model_config.h"
#include "core/status.h"
#include "core/text_encoder.h"
#include "core/tokenizer.h"
#include "core/weights.h"

namespace ds {

class Model {
 public:
  // folder: a model folder (config.json, model.safetensors, vocab.txt).
  static Result<std::unique_ptr<Model>> Load(const std::string& folder);

  const ModelConfig& config() const { return config_; }
  const std::string& folder() const { return folder_; }
  const WordTokenizer& tokenizer() const { return tokenizer_; }
  TextEncoder& text_encoder() { return text_; }
  Dit& dit() { return dit_; }
  FrameDecoder& decoder() { return decoder_; }

 private:
  Model(Weights weights) : weights_(std::move(weights)) {}
  std::string folder_;
  ModelConfig config_;
  Weights weights_;  // owns the float32 storage every stage's tensors point into
  WordTokenizer tokenizer_;
  TextEncoder text_;
  Dit dit_;
  FrameDecoder decoder_;
};

}  // namespace ds
