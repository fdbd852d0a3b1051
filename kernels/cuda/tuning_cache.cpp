#include "kernels/cuda/tuning_cache.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "core/text_file.h"

namespace ds::cuda {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

}  // namespace

// Lower-case hex of an even length, or nothing.
std::optional<std::vector<uint8_t>> TuningCache::FromHex(std::string_view hex) {
  if (hex.empty() || hex.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> bytes(hex.size() / 2);
  for (size_t i = 0; i < bytes.size(); ++i) {
    const int hi = HexDigit(hex[2 * i]), lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return bytes;
}

std::string TuningCache::ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (uint8_t b : bytes) {
    hex.push_back(kDigits[b >> 4]);
    hex.push_back(kDigits[b & 15]);
  }
  return hex;
}

// The file's entries; none when there is no file (or it cannot be read: the choices are then
// timed again).
TuningCache::Entries TuningCache::Read() const {
  if (path_.empty()) return {};
  const Result<std::string> text = ReadTextFile(path_);
  return text.ok() ? Parse(*text) : Entries{};
}

TuningCache::TuningCache(std::string path) : path_(std::move(path)), entries_(Read()) {}

std::string TuningCache::DefaultPath() {
  if (const char* env = std::getenv("DS_TUNING_CACHE")) return env;
  // Its name while the cache held GEMM algorithms only: "" there still means no file.
  if (const char* env = std::getenv("DS_GEMM_TUNING_CACHE")) return env;
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg == '/') return std::string(xdg) + "/ditstream/kernel-tuning.txt";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home == '/') return std::string(home) + "/.cache/ditstream/kernel-tuning.txt";
  return "";
}

std::optional<std::string> TuningCache::Find(const std::string& key) const {
  const auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

Status TuningCache::Insert(const std::string& key, std::string_view value) {
  if (key.empty() || value.empty() || std::any_of(key.begin(), key.end(), IsSpace) ||
      std::any_of(value.begin(), value.end(), IsSpace)) {
    return Status(Code::kInvalidArgument,
                  "tuning cache: key '" + key + "' or value '" + std::string(value) + "' is empty or holds whitespace");
  }
  entries_[key] = value;
  if (path_.empty()) return Status::Ok();
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target(path_);
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  if (ec)
    return Status(Code::kIo, "tuning cache: cannot create " + target.parent_path().string() + ": " + ec.message());
  // Entries another process (or backend) wrote since this one read the file are kept: merged
  // under this one's.
  Entries merged = Read();
  for (const auto& [k, v] : entries_) merged[k] = v;
  const std::string text = Format(merged);
  if (Status s = WriteFileAtomically(path_, {text}); !s.ok()) return Status(Code::kIo, "tuning cache: " + s.message());
  return Status::Ok();
}

TuningCache::Entries TuningCache::Parse(std::string_view text) {
  Entries entries;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    while (!line.empty() && IsSpace(line.back())) line.remove_suffix(1);
    const size_t gap = line.find(' ');
    if (line.empty() || line.front() == '#' || gap == 0 || gap == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, gap), value = line.substr(gap + 1);
    if (!value.empty() && std::none_of(value.begin(), value.end(), IsSpace)) entries[std::string(key)] = value;
  }
  return entries;
}

std::string TuningCache::Format(const Entries& entries) {
  std::string text =
      "# ditstream: GEMM algorithms and attention kernels chosen by timing (kernels/cuda/autotune.h); safe to "
      "delete\n";
  for (const auto& [key, value] : entries) text += key + " " + value + "\n";
  return text;
}

std::string TuningCache::MakeKey(std::initializer_list<std::string_view> parts) {
  std::string key;
  for (std::string_view part : parts) {
    if (!key.empty()) key.push_back('/');
    for (char c : part) key.push_back(IsSpace(c) ? '_' : c);
  }
  return key;
}

}  // namespace ds::cuda
