// Fuzz target: prompts through WordTokenizer::Encode, and vocabulary files through Load.
// Input: [max_tokens: 1 signed byte] [vocabulary file] '\0' [prompt]; without a '\0' the whole rest
// is the prompt and a fixed vocabulary is used. Checks Encode against an independent reading of the
// documented rule: [<start>, known words…] truncated to max_tokens, words are runs of ASCII letters
// and digits, lower-cased; a word's id is its first line in the vocabulary; unknown words (and the
// two special tokens) are dropped and reported.
#include <cstring>
#include <unordered_map>

#include "core/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const std::vector<std::string> kVocab = {"<pad>", "<start>", "a", "red", "circle", "moving", "right", "left",
                                         "blue", "square", "2", "x1", "red"};

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> words(1);
  for (char ch : text) {
    const bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (alnum) {
      words.back().push_back(ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch);
    } else if (!words.back().empty()) {
      words.emplace_back();
    }
  }
  if (words.back().empty()) words.pop_back();
  return words;
}

void Check(const ds::WordTokenizer& tok, const std::vector<std::string>& vocab, std::string_view prompt,
           int max_tokens) {
  std::unordered_map<std::string, int> first;
  for (size_t i = 0; i < vocab.size(); ++i) first.emplace(vocab[i], static_cast<int>(i));
  std::vector<int> want = {ds::WordTokenizer::kStart};
  std::vector<std::string> want_unknown;
  for (const std::string& w : Words(prompt)) {
    auto it = first.find(w);
    if (it == first.end() || it->second <= ds::WordTokenizer::kStart) {
      want_unknown.push_back(w);
    } else if (static_cast<int>(want.size()) < max_tokens) {
      want.push_back(it->second);
    }
  }
  std::vector<std::string> unknown;
  const std::vector<int> ids = tok.Encode(prompt, max_tokens, &unknown);
  FUZZ_CHECK(ids == want, "%zu ids, want %zu", ids.size(), want.size());
  FUZZ_CHECK(unknown == want_unknown, "%zu unknown words, want %zu", unknown.size(), want_unknown.size());
  FUZZ_CHECK(tok.Encode(prompt, max_tokens, nullptr) == ids, "the unknown-word sink changes the ids");
}

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line(text.substr(start, nl == std::string_view::npos ? nl : nl - start));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int max_tokens = static_cast<int8_t>(data[0]);
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos) {
    static const ds::WordTokenizer fixed = ds::WordTokenizer::FromWords(kVocab);
    Check(fixed, kVocab, rest, max_tokens);
    return 0;
  }
  static ds::fuzz::MemFile file;
  file.Set(rest.substr(0, nul));
  auto tok = ds::WordTokenizer::Load(file.path());
  const std::vector<std::string> lines = Lines(rest.substr(0, nul));
  const bool valid = lines.size() >= 3 && lines[0] == "<pad>" && lines[1] == "<start>";
  FUZZ_CHECK(tok.ok() == valid, "Load %s a vocabulary of %zu lines", tok.ok() ? "accepts" : "refuses", lines.size());
  if (!tok.ok()) {
    FUZZ_CHECK(ds::fuzz::Contains(tok.status().message(), file.path()), "%s", tok.status().message().c_str());
    return 0;
  }
  FUZZ_CHECK(tok->vocab_size() == static_cast<int>(lines.size()), "vocab_size %d for %zu lines", tok->vocab_size(),
             lines.size());
  Check(*tok, lines, rest.substr(nul + 1), max_tokens);
  return 0;
}
