// The choices timed on this machine (autotune.h), kept on disk so that every later process takes
// the same ones (the same bits for the same seed and prompt: timing alone would let a near tie fall
// either way from run to run) without timing again. One "<key> <value>" line per choice: the key
// names the device, the library versions and the call (a GEMM plan's shape, an attention's), the
// value what was chosen (a cuBLASLt algorithm's bytes in hex, a flash configuration's name). A
// file that cannot be read or written is no error: the choices are then timed in each process.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ds::cuda {

class TuningCache {
 public:
  using Entries = std::map<std::string, std::string>;

  TuningCache() = default;  // none: nothing is read or written
  // Loads `path` if it exists (lines that do not parse are skipped).
  explicit TuningCache(std::string path);

  // Where the cache lives: DS_TUNING_CACHE if set ("" for none), else DS_GEMM_TUNING_CACHE (its
  // earlier name), else
  // $XDG_CACHE_HOME/ditstream/kernel-tuning.txt, else ~/.cache/ditstream/kernel-tuning.txt.
  static std::string DefaultPath();

  const std::string& path() const { return path_; }
  std::optional<std::string> Find(const std::string& key) const;
  // Records key → value and rewrites the file (a new file renamed over the old one, so a reader
  // never sees half of it), keeping the entries others wrote to it since (best effort: two
  // writers at the same moment can still drop one entry, which is then timed again). The error
  // says why the file could not be written; the entry is kept in memory then. Keys and values
  // hold no whitespace (MakeKey): an empty one, or one that does, is refused (kInvalidArgument)
  // and kept nowhere.
  Status Insert(const std::string& key, std::string_view value);

  // The file's text format; a later line for a key wins.
  static Entries Parse(std::string_view text);
  static std::string Format(const Entries& entries);
  // `parts` joined by '/', whitespace in them replaced by '_'.
  static std::string MakeKey(std::initializer_list<std::string_view> parts);
  // Bytes as lower-case hex, and back (nothing for odd lengths or other characters).
  static std::string ToHex(std::span<const uint8_t> bytes);
  static std::optional<std::vector<uint8_t>> FromHex(std::string_view hex);

 private:
  Entries Read() const;

  std::string path_;
  Entries entries_;
};

}  // namespace ds::cuda
