#include "core/wan/wan_tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <map>

#ifdef DS_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#else
namespace sentencepiece {
class SentencePieceProcessor {};
}  // namespace sentencepiece
#endif

namespace ds {
namespace {

// Decodes one UTF-8 code point at s[i], advancing i; an invalid byte decodes as itself (Latin-1),
// so malformed input passes through instead of failing the prompt.
char32_t NextCodePoint(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  int len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xe ? 3 : (b0 >> 3) == 0x1e ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return b0;
  }
  char32_t cp = len == 1 ? b0 : b0 & (0x7f >> len);
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b >> 6) != 0x2) {
      ++i;
      return b0;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  i += len;
  return cp;
}

void AppendUtf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Python's str.isspace (also what re's \s and str.strip() use).
bool IsSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Named references decoded by html.unescape, a common subset. Names marked legacy are also
// recognised without the ';' (HTML5's legacy list), e.g. "&amp" and the prefix in "&ampx".
struct NamedRef {
  const char* text;
  bool legacy;
};
const std::map<std::string, NamedRef, std::less<>>& NamedRefs() {
  static const std::map<std::string, NamedRef, std::less<>> m = {
      {"amp", {"&", true}},         {"AMP", {"&", true}},         {"lt", {"<", true}},
      {"LT", {"<", true}},          {"gt", {">", true}},          {"GT", {">", true}},
      {"quot", {"\"", true}},       {"QUOT", {"\"", true}},       {"apos", {"'", false}},
      {"nbsp", {"\u00a0", true}},   {"copy", {"\u00a9", true}},   {"COPY", {"\u00a9", true}},
      {"reg", {"\u00ae", true}},    {"REG", {"\u00ae", true}},    {"deg", {"\u00b0", true}},
      {"times", {"\u00d7", true}},  {"middot", {"\u00b7", true}}, {"laquo", {"\u00ab", true}},
      {"raquo", {"\u00bb", true}},  {"eacute", {"\u00e9", true}}, {"egrave", {"\u00e8", true}},
      {"agrave", {"\u00e0", true}}, {"ouml", {"\u00f6", true}},   {"uuml", {"\u00fc", true}},
      {"auml", {"\u00e4", true}},   {"szlig", {"\u00df", true}},  {"ccedil", {"\u00e7", true}},
      {"ntilde", {"\u00f1", true}}, {"trade", {"\u2122", false}}, {"hellip", {"\u2026", false}},
      {"mdash", {"\u2014", false}}, {"ndash", {"\u2013", false}}, {"lsquo", {"\u2018", false}},
      {"rsquo", {"\u2019", false}}, {"ldquo", {"\u201c", false}}, {"rdquo", {"\u201d", false}},
      {"euro", {"\u20ac", false}},
  };
  return m;
}

// html.unescape's table for numeric references to C1 controls (read as Windows-1252) and NUL/CR.
char32_t InvalidCharref(uint32_t n, bool& found) {
  static const char32_t kC1[32] = {0x20ac, 0x81,   0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
                                   0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d,   0x017d, 0x8f,
                                   0x90,   0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
                                   0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d,   0x017e, 0x0178};
  found = true;
  if (n == 0) return 0xfffd;
  if (n == 0x0d) return 0x0d;
  if (n >= 0x80 && n <= 0x9f) return kC1[n - 0x80];
  found = false;
  return 0;
}

bool InvalidCodepoint(uint32_t n) {
  return (n >= 0x1 && n <= 0x8) || n == 0xb || (n >= 0xe && n <= 0x1f) || (n >= 0x7f && n <= 0x9f) ||
         (n >= 0xfdd0 && n <= 0xfdef) || (n & 0xfffe) == 0xfffe;
}

bool IsDigit(char c, bool hex) {
  return (c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
}

// One pass of Python's html.unescape: &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?).
std::string HtmlUnescape(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == '#') {
      const bool hex = j + 1 < s.size() && (s[j + 1] == 'x' || s[j + 1] == 'X');
      size_t k = j + (hex ? 2 : 1), start = k;
      uint64_t num = 0;
      while (k < s.size() && IsDigit(s[k], hex)) {
        const char ch = s[k++];
        const int digit = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + digit, 0x110000);
      }
      if (k == start) {  // "&#" without digits is literal
        out += s[i++];
        continue;
      }
      if (k < s.size() && s[k] == ';') ++k;
      bool found = false;
      const char32_t mapped = InvalidCharref(static_cast<uint32_t>(num), found);
      if (found) {
        AppendUtf8(out, mapped);
      } else if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) {
        AppendUtf8(out, 0xfffd);
      } else if (!InvalidCodepoint(static_cast<uint32_t>(num))) {
        AppendUtf8(out, static_cast<char32_t>(num));
      }
      i = k;
      continue;
    }
    size_t k = j;
    while (k < s.size() && k - j < 32 && std::string_view("\t\n\f <&#;").find(s[k]) == std::string_view::npos) ++k;
    if (k == j) {
      out += s[i++];
      continue;
    }
    const std::string_view name = s.substr(j, k - j);
    const bool semicolon = k < s.size() && s[k] == ';';
    const auto& refs = NamedRefs();
    if (auto it = refs.find(name); it != refs.end() && (semicolon || it->second.legacy)) {
      out += it->second.text;
      i = k + (semicolon ? 1 : 0);
      continue;
    }
    // The longest legacy name that prefixes the run, the rest kept literally.
    bool replaced = false;
    for (size_t len = name.size() - 1; len > 1 && !replaced; --len) {
      auto it = refs.find(name.substr(0, len));
      if (it != refs.end() && it->second.legacy) {
        out += it->second.text;
        i = j + len;
        replaced = true;
      }
    }
    if (!replaced) out += s[i++];
  }
  return out;
}

}  // namespace

std::string WanPromptClean(std::string_view text) {
  const std::string unescaped = HtmlUnescape(HtmlUnescape(text));
  std::string out;
  bool pending_space = false;
  for (size_t i = 0; i < unescaped.size();) {
    const char32_t cp = NextCodePoint(unescaped, i);
    if (IsSpace(cp)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    AppendUtf8(out, cp);
  }
  return out;
}

WanTokenizer::WanTokenizer(WanTokenizer&&) noexcept = default;
WanTokenizer& WanTokenizer::operator=(WanTokenizer&&) noexcept = default;
WanTokenizer::~WanTokenizer() = default;

#ifdef DS_HAVE_SENTENCEPIECE

Result<WanTokenizer> WanTokenizer::Load(const std::string& folder) {
  const std::string path = (std::filesystem::path(folder) / "spiece.model").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Error(Code::kModel, "{}: missing; the Wan tokenizer needs the UMT5 sentencepiece model", path);
  }
  WanTokenizer t;
  t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = t.sp_->Load(path);
  if (!status.ok()) return Error(Code::kModel, "{}: not a sentencepiece model: {}", path, status.ToString());
  if (t.sp_->eos_id() >= 0) t.eos_ = t.sp_->eos_id();
  return t;
}

Result<std::vector<int>> WanTokenizer::Encode(std::string_view prompt, int max_tokens) const {
  if (max_tokens < 1) return Error(Code::kInvalidArgument, "max_tokens must be at least 1, got {}", max_tokens);
  std::vector<int> ids;
  const auto status = sp_->Encode(WanPromptClean(prompt), &ids);
  if (!status.ok()) return Error(Code::kInvalidArgument, "cannot tokenize the prompt: {}", status.ToString());
  if (static_cast<int>(ids.size()) > max_tokens - 1) ids.resize(static_cast<size_t>(max_tokens - 1));
  ids.push_back(eos_);
  return ids;
}

int WanTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

#else

Result<WanTokenizer> WanTokenizer::Load(const std::string& folder) {
  return Error(Code::kUnsupported, "{}: this build has no libsentencepiece, which the Wan tokenizer needs", folder);
}

Result<std::vector<int>> WanTokenizer::Encode(std::string_view, int) const {
  return Error(Code::kUnsupported, "this build has no libsentencepiece");
}

int WanTokenizer::vocab_size() const { return 0; }

#endif

}  // namespace ds
