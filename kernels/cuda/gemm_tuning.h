// Which of cuBLASLt's candidate algorithms a GEMM plan keeps (gemm.cpp). The heuristic ranks
// algorithms by a model of the card; its first choice is not always the fastest at a given shape
// and epilogue (on an H100 the engine's GEMMs ran at about 76 % of cuBLASLt's standalone rate,
// the GELU epilogue's at 72 %: bench/RESULTS.md). So a plan made outside a CUDA graph capture
// times the heuristic's first few candidates once, on the real shape, and keeps the fastest:
// cuBLASLt's own documentation suggests this, and it is what autotuning libraries do. Plain C++:
// the choice is tested on the CPU (tests/cuda/test_gemm_tuning.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ds::cuda {

// Which new GEMM plans time their candidates (CudaOptions::gemm_autotune).
enum class GemmAutotune {
  kOff,       // none: the heuristic's first
  kRecorded,  // those made while a model's recorded ops are issued (Backend::RunRecorded): the
              // ops replayed every step
  kAll,       // every one (benchmarks)
};

struct GemmTuning {
  // Candidates asked of the heuristic and timed per plan.
  static constexpr int kCandidates = 8;
  // Timed launches per candidate, after one untimed warm-up launch.
  static constexpr int kRuns = 3;
  // A candidate replaces the heuristic's first only when faster by more than this share: below it
  // the difference is timing noise, and the first choice is the one cuBLASLt stands behind.
  static constexpr double kMargin = 0.03;
  // The heuristic's first taking less than this (milliseconds per launch): the launch is most of
  // what the events measure, so the others are not timed.
  static constexpr double kMinMs = 0.02;
};

// The candidate to keep, from their mean times in the heuristic's order (ms[i] ≤ 0 or NaN: candidate
// i could not run). The heuristic's first unless another ran faster by more than kMargin; with the
// first unable to run, the fastest that could; -1 when none could (the caller keeps the first, and
// its launch reports why).
inline int ChooseAlgorithm(std::span<const double> ms) {
  auto ran = [&](size_t i) { return std::isfinite(ms[i]) && ms[i] > 0.0; };
  int fastest = -1;
  for (size_t i = 0; i < ms.size(); ++i) {
    if (ran(i) && (fastest < 0 || ms[i] < ms[static_cast<size_t>(fastest)])) fastest = static_cast<int>(i);
  }
  if (fastest <= 0 || !ran(0)) return fastest;
  return ms[static_cast<size_t>(fastest)] < ms[0] * (1.0 - GemmTuning::kMargin) ? fastest : 0;
}

// The timed choices, kept on disk so that every later process on this machine takes the same
// algorithm (the same bits for the same seed and prompt: timing alone would let a near tie fall
// either way from run to run) without timing again. cuBLASLt documents its algorithm struct as
// trivially serialisable for the same library version, so a line is the plan's key (which names
// the device, the cuBLASLt version and the plan's shape) and the struct's bytes in hex. A file
// that cannot be read or written is no error: the choice is then timed in each process.
class GemmTuningCache {
 public:
  GemmTuningCache() = default;  // none: nothing is read or written
  // Loads `path` if it exists (lines that do not parse are skipped).
  explicit GemmTuningCache(std::string path);

  // Where the cache lives: DS_GEMM_TUNING_CACHE if set ("" for none), else
  // $XDG_CACHE_HOME/ditstream/cublaslt-tuning.txt, else ~/.cache/ditstream/cublaslt-tuning.txt.
  static std::string DefaultPath();

  const std::string& path() const { return path_; }
  std::optional<std::vector<uint8_t>> Find(const std::string& key) const;
  // Records key → bytes and rewrites the file (a new file renamed over the old one, so a reader
  // never sees half of it), keeping the entries others wrote to it since (best effort: two
  // writers at the same moment can still drop one entry, which is then timed again). The error
  // says why the file could not be written; the entry is kept in memory either way.
  Status Insert(const std::string& key, std::span<const uint8_t> bytes);

  // The file's text format, one "<key> <hex bytes>" line per entry; a later line for a key wins.
  // Keys hold no whitespace (MakeKey replaces it).
  static std::map<std::string, std::vector<uint8_t>> Parse(std::string_view text);
  static std::string Format(const std::map<std::string, std::vector<uint8_t>>& entries);
  // `parts` joined by '/', whitespace in them replaced by '_'.
  static std::string MakeKey(std::initializer_list<std::string_view> parts);

 private:
  std::map<std::string, std::vector<uint8_t>> Read() const;

  std::string path_;
  std::map<std::string, std::vector<uint8_t>> entries_;
};

}  // namespace ds::cuda
