// The demo model's text encoder: learned token + position embeddings, pre-LN transformer layers,
// final LayerNorm, mean pooling (docs/model_format.md, "Text").
#pragma once

#include <vector>

#include "core/backend.h"
#include "core/layers.h"
#include "core/model_config.h"
#include "core/status.h"

namespace ds {

class Weights;

struct TextEmbedding {
  std::vector<float> tokens;  // [len, dim]
  std::vector<float> pooled;  // [dim]
  int len = 0;
};

class TextEncoder {
 public:
  static Result<TextEncoder> Load(const TextConfig& config, int vocab_size, Weights& weights);
  Result<TextEmbedding> Encode(Backend& be, const std::vector<int>& ids) const;

 private:
  struct Layer {
    Tensor ln1_w, ln1_b, ln2_w, ln2_b;
    Linear qkv, out, fc1, fc2;
  };
  TextConfig cfg_;
  int vocab_size_ = 0;
  Tensor tok_emb_, pos_emb_, lnf_w_, lnf_b_;
  std::vector<Layer> layers_;
};

}  // namespace ds
