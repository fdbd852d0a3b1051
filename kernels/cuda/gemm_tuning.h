// Which of cuBLASLt's candidate algorithms a GEMM plan keeps (gemm.cpp). The heuristic ranks
// algorithms by a model of the card; its first choice is not always the fastest at a given shape
// and epilogue (on an H100 the engine's GEMMs ran at about 76 % of cuBLASLt's standalone rate,
// the GELU epilogue's at 72 %: bench/RESULTS.md). So a plan made outside a CUDA graph capture
// times the heuristic's first few candidates once, on the real shape, and keeps the fastest:
// cuBLASLt's own documentation suggests this, and it is what autotuning libraries do. Plain C++:
// the choice is tested on the CPU (tests/cuda/test_gemm_tuning.cpp).
#pragma once

#include <cmath>
#include <span>

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

}  // namespace ds::cuda
