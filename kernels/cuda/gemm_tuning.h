// How a GEMM plan times cuBLASLt's candidate algorithms (gemm.cpp; the rule and the cache are
// autotune.h's and tuning_cache.h's). The heuristic ranks algorithms by a model of the card; its
// first choice is not always the fastest at a given shape and epilogue (on an H100 the engine's
// GEMMs ran at about 76 % of cuBLASLt's standalone rate, the GELU epilogue's at 72 %:
// bench/RESULTS.md). So a plan made outside a CUDA graph capture times the heuristic's first few
// candidates once, on the real shape, and keeps the fastest: cuBLASLt's own documentation suggests
// this, and it is what autotuning libraries do.
#pragma once

#include "kernels/cuda/autotune.h"
#include "kernels/cuda/tuning_cache.h"

namespace ds::cuda {

struct GemmTuning {
  // Candidates asked of the heuristic and timed per plan.
  static constexpr int kCandidates = 8;
  // Timed launches per candidate, after one untimed warm-up launch.
  static constexpr int kRuns = 3;
  // The heuristic's first taking less than this (milliseconds per launch): the launch is most of
  // what the events measure, so the others are not timed.
  static constexpr double kMinMs = 0.02;
};

}  // namespace ds::cuda
