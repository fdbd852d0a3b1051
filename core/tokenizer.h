// Word-level tokenizer of the bundled demo model (docs/model_format.md, "Text").
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace ds {

class WordTokenizer {
 public:
  static constexpr int kPad = 0;
  static constexpr int kStart = 1;

  static Result<WordTokenizer> Load(const std::string& vocab_path);
  static WordTokenizer FromWords(std::vector<std::string> words);

  // [<start>, known words…] truncated to max_tokens. Unknown words are dropped and reported in
  // *unknown (the caller warns), so that a prompt with a typo still generates.
  std::vector<int> Encode(std::string_view text, int max_tokens,
                          std::vector<std::string>* unknown) const;
  int vocab_size() const { return static_cast<int>(words_.size()); }

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int> ids_;
};

}  // namespace ds
