#include "core/tokenizer.h"

#include <filesystem>
#include <fstream>

namespace ds {

WordTokenizer WordTokenizer::FromWords(std::vector<std::string> words) {
  WordTokenizer t;
  t.words_ = std::move(words);
  for (size_t i = 0; i < t.words_.size(); ++i) t.ids_.emplace(t.words_[i], static_cast<int>(i));
  return t;
}

Result<WordTokenizer> WordTokenizer::Load(const std::string& vocab_path) {
  std::error_code ec;
  if (std::filesystem::exists(vocab_path, ec) && !std::filesystem::is_regular_file(vocab_path, ec)) {
    return Error(Code::kIo, "{}: not a regular file", vocab_path);  // a FIFO would block the open for ever
  }
  std::ifstream in(vocab_path);
  if (!in) return Error(Code::kIo, "{}: cannot open the vocabulary", vocab_path);
  // getline swallows std::bad_alloc into badbit, which would end the loop with a silently truncated
  // vocabulary; with badbit in the mask it is rethrown as it was.
  in.exceptions(std::ios::badbit);
  std::vector<std::string> words;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    words.push_back(line);
  }
  if (words.size() < 3 || words[kPad] != "<pad>" || words[kStart] != "<start>") {
    return Error(Code::kModel, "{}: expected '<pad>' and '<start>' on the first two lines and at least one word",
                 vocab_path);
  }
  return FromWords(std::move(words));
}

std::vector<int> WordTokenizer::Encode(std::string_view text, int max_tokens,
                                       std::vector<std::string>* unknown) const {
  std::vector<int> ids = {kStart};
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    auto it = ids_.find(word);
    if (it != ids_.end() && it->second > kStart) {
      if (static_cast<int>(ids.size()) < max_tokens) ids.push_back(it->second);
    } else if (unknown != nullptr) {
      unknown->push_back(word);
    }
    word.clear();
  };
  for (char ch : text) {
    char c = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      word.push_back(c);
    } else {
      flush();
    }
  }
  flush();
  return ids;
}

}  // namespace ds
