// Kernel choices made by timing on the running card: which cuBLASLt algorithm a GEMM plan keeps
// (gemm.cpp, gemm_tuning.h) and which flash attention configuration runs at a given shape
// (attention/attention_tuning.h). Both time their candidates once, where the same call will repeat
// (a model's recorded forward), keep the default unless another is clearly faster, and keep what
// they chose on disk (tuning_cache.h). Plain C++: the rule is tested on the CPU
// (tests/cuda/test_tuning.cpp).
#pragma once

#include <cmath>
#include <optional>
#include <span>
#include <string_view>

namespace ds::cuda {

// Which new choices are timed (CudaOptions::gemm_autotune, CudaOptions::attention_autotune).
enum class Autotune {
  kOff,       // none: the default (the heuristic's first algorithm, the head dim's default kernel)
  kRecorded,  // those made while a model's recorded ops are issued (Backend::RunRecorded): the
              // ops replayed every step
  kAll,       // every one (benchmarks)
};

// "0"/"off", "recorded" or "all" (the DS_GEMM_AUTOTUNE and DS_ATTENTION_AUTOTUNE spellings).
inline std::optional<Autotune> ParseAutotune(std::string_view text) {
  if (text == "0" || text == "off") return Autotune::kOff;
  if (text == "recorded") return Autotune::kRecorded;
  if (text == "all") return Autotune::kAll;
  return std::nullopt;
}

// A candidate replaces the default only when faster by more than this share: below it the
// difference is timing noise, and the default is the one its authors (cuBLASLt's heuristic, this
// project's measurements) stand behind.
inline constexpr double kTuningMargin = 0.03;

// The candidate to keep, from their mean times with the default first (ms[i] ≤ 0 or NaN: candidate
// i could not run). The default unless another ran faster by more than kTuningMargin; with the
// default unable to run, the fastest that could; -1 when none could (the caller keeps the default,
// and its launch reports why).
inline int ChooseFastest(std::span<const double> ms) {
  auto ran = [&](size_t i) { return std::isfinite(ms[i]) && ms[i] > 0.0; };
  int fastest = -1;
  for (size_t i = 0; i < ms.size(); ++i) {
    if (ran(i) && (fastest < 0 || ms[i] < ms[static_cast<size_t>(fastest)])) fastest = static_cast<int>(i);
  }
  if (fastest <= 0 || !ran(0)) return fastest;
  return ms[static_cast<size_t>(fastest)] < ms[0] * (1.0 - kTuningMargin) ? fastest : 0;
}

}  // namespace ds::cuda
