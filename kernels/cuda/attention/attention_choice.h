// The plain-C++ half of the attention autotuner (attention_tuning.h): the shape keys, which
// configurations are timed, and what a choice records. No CUDA types, so the backend's header and
// the CPU tests (tests/cuda/test_tuning.cpp) include it.
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace ds::cuda {

struct AttentionTuning {
  // Timed launches per candidate, after one untimed warm-up launch (a Wan-1.3B self-attention
  // takes ~12 ms on an H100: its two candidates there cost ~0.1 s once per machine, all seven TMA-fed
  // ones ~0.35 s).
  static constexpr int kRuns = 2;
  // The default taking less than this (milliseconds per call): launches and the events' own cost
  // are much of what is measured, and the choice would follow noise; the default is kept.
  static constexpr double kMinMs = 0.05;
};

// The shape a choice is made for, as the tuning cache's key: "hd128/nq32760/nk512/h12/bf16,bf16,
// bf16,f32" (head dim, queries, keys, heads, q/k/v/o dtypes: F32 inputs add a conversion pass to
// every candidate's time).
inline std::string AttentionShapeKey(int head_dim, int64_t nq, int64_t nk, int64_t heads, DType q, DType k, DType v,
                                     DType o) {
  auto name = [](DType t) {
    std::string s = DTypeName(t);
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  return "hd" + std::to_string(head_dim) + "/nq" + std::to_string(nq) + "/nk" + std::to_string(nk) + "/h" +
         std::to_string(heads) + "/" + name(q) + "," + name(k) + "," + name(v) + "," + name(o);
}

// A flash configuration's kernel kind (flash::ConfigInfo's wgmma and tma).
enum class FlashFamily { kMmaSync, kWgmmaCpAsync, kWgmmaTma };
inline FlashFamily FlashFamilyOf(bool wgmma, bool tma) {
  return !wgmma ? FlashFamily::kMmaSync : tma ? FlashFamily::kWgmmaTma : FlashFamily::kWgmmaCpAsync;
}

// The configurations to time (indices into a head dim's configurations, given their families and
// whether each can run here), the default first: it and the others of its family. The other
// families ran 1.3–1.7× slower where the default's ran (H100, bench/RESULTS.md): timing them would
// cost without a chance of winning. Empty when the default is out of range.
inline std::vector<int> AttentionCandidates(const std::vector<FlashFamily>& families, const std::vector<bool>& runnable,
                                            int default_config) {
  const int n = static_cast<int>(families.size());
  if (default_config < 0 || default_config >= n || runnable.size() != families.size()) return {};
  std::vector<int> candidates = {default_config};
  for (int i = 0; i < n; ++i) {
    const auto at = static_cast<size_t>(i);
    if (i != default_config && runnable[at] && families[at] == families[static_cast<size_t>(default_config)]) {
      candidates.push_back(i);
    }
  }
  return candidates;
}

// Whether a flash configuration has run on a GPU and passed every GPU test there (H100 and H200,
// 2026-11-25/26, bench/RESULTS.md): only those are timed by default. A configuration built since
// (any name not listed: the list fails closed) could hang or compute garbage in a user's first
// forward; it becomes a candidate where FlashUnverifiedAllowed() (bench/gpu_check.sh sets
// DS_FLASH_UNVERIFIED=1 for its benchmarks, after its GPU tests have run every configuration),
// and joins this list once a GPU run has passed it.
inline bool FlashRanOnAGpu(std::string_view name) {
  static constexpr std::string_view kRan[] = {
      "w8x1_k128_s2_qr", "w4x2_k64_s2_qs", "w8x1_k64_s2_qr",    "w4x2_k32_s3_qs",     "w4x2_k32_s2_qs",
      "w8x2_k32_s3_qs",  "wgmma2_k128_s2", "wgmma2_k128_s3_ov", "wgmma2_k128_s2_tma", "wgmma2_k128_s3_tma",
  };
  for (std::string_view n : kRan) {
    if (n == name) return true;
  }
  return false;
}

// DS_FLASH_UNVERIFIED set (and not "0"): configurations that have not run on a GPU are timed too.
inline bool FlashUnverifiedAllowed() {
  const char* env = std::getenv("DS_FLASH_UNVERIFIED");
  return env != nullptr && *env != '\0' && std::string_view(env) != "0";
}

// What was chosen for one shape.
struct AttentionChoice {
  enum class How { kTimed, kCached, kUntimed };
  int config = -1;   // index into flash::Configs(head dim)
  std::string name;  // its name ("wgmma2_k128_s2_tma")
  How how = How::kUntimed;
  double default_ms = 0.0, chosen_ms = 0.0;  // how == kTimed: the default's and the chosen one's time
};

}  // namespace ds::cuda
