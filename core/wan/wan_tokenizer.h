// Wan2.1's prompt tokenisation (reference/wan21_spec.md §1.4): the pipeline's prompt_clean, then the
// UMT5 sentencepiece model (tokenizer/spiece.model, read with libsentencepiece), then </s>.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace ds {

// diffusers' prompt_clean: html.unescape twice, strip, every run of Unicode whitespace → one space,
// strip. Differences from Python: ftfy is not applied (diffusers applies it only when installed),
// and of the named HTML entities only the common ones are decoded (numeric ones all are).
std::string WanPromptClean(std::string_view text);

class WanTokenizer {
 public:
  // folder: a tokenizer/ folder holding spiece.model (tokenizer.json alone is not supported).
  static Result<WanTokenizer> Load(const std::string& folder);

  WanTokenizer(WanTokenizer&&) noexcept;
  WanTokenizer& operator=(WanTokenizer&&) noexcept;
  ~WanTokenizer();

  // Token ids of the cleaned prompt followed by </s>, truncated to max_tokens (</s> included), as
  // T5TokenizerFast(truncation=True, add_special_tokens=True) gives them. "" → [</s>].
  Result<std::vector<int>> Encode(std::string_view prompt, int max_tokens) const;
  int vocab_size() const;

 private:
  WanTokenizer() = default;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int eos_ = 1;
};

}  // namespace ds
