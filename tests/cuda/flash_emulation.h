// The pieces of the flash kernels' CPU emulations shared by test_flash_layout.cpp (the mma.sync
// kernel) and test_hopper_layout.cpp (the wgmma kernel): a byte-addressed shared memory, cp.async
// groups that land at issue or at the wait, the problem (bf16 q/k/v of a fused buffer) and the
// float64 softmax(q·kᵀ·scale)·v it is held to.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/attention/flash_layout.h"

namespace ds::cuda::flash::emu {

using Smem = std::vector<uint8_t>;

inline uint16_t LoadBf16(const Smem& smem, uint32_t byte) {
  return static_cast<uint16_t>(smem.at(byte) | (smem.at(byte + 1) << 8));
}
inline void StoreBf16(Smem& smem, uint32_t byte, uint16_t v) {
  smem.at(byte) = static_cast<uint8_t>(v & 0xff);
  smem.at(byte + 1) = static_cast<uint8_t>(v >> 8);
}

inline float RegHalf(uint32_t reg, int half) { return Bf16ToFloat(static_cast<uint16_t>(reg >> (16 * half))); }

// q/k/v of all heads as bf16 bits, [tokens, 3, heads, dh] like the engine's fused qkv buffer.
struct Problem {
  int nq, nk, heads, dh;
  float scale;
  std::vector<uint16_t> qkv;  // max(nq, nk) · 3 · heads · dh
  int64_t row() const { return 3LL * heads * dh; }
  const uint16_t* q() const { return qkv.data(); }
  const uint16_t* k() const { return qkv.data() + static_cast<int64_t>(heads) * dh; }
  const uint16_t* v() const { return qkv.data() + 2LL * heads * dh; }
};

inline Problem MakeProblem(std::mt19937& rng, int nq, int nk, int heads, int dh, float amplitude) {
  Problem p{nq, nk, heads, dh, 1.0f / std::sqrt(static_cast<float>(dh)), {}};
  p.qkv.resize(static_cast<size_t>(std::max(nq, nk)) * p.row());
  std::uniform_real_distribution<float> dist(-amplitude, amplitude);
  for (auto& x : p.qkv) x = Bf16Bits(dist(rng));
  return p;
}

// cp.async as the kernel uses it: each copy joins the open group, commit closes the group, and
// wait(n) completes all but the newest n groups. When a copy's 16 bytes reach shared memory is up
// to the hardware between its issue and the wait that covers it, so the emulation runs both
// extremes: kAtIssue (a slot overwritten while some warp still reads it shows) and kAtWait (a
// tile read before its group is waited for shows: the slot still holds poison or an old tile).
enum class Landing { kAtIssue, kAtWait };

class AsyncCopies {
 public:
  AsyncCopies(Smem& smem, Landing landing) : smem_(smem), landing_(landing) {}

  // 8 bf16 from `src`, or 16 zero bytes when src is null (the src-size 0 form).
  void Copy(uint32_t dst, const uint16_t* src) {
    Pending c{dst, {}};
    for (int e = 0; e < 8; ++e) c.data[static_cast<size_t>(e)] = src ? src[e] : 0;
    if (landing_ == Landing::kAtIssue) {
      Land(c);
    } else {
      open_.push_back(c);
    }
  }
  void Commit() {
    groups_.push_back(std::move(open_));
    open_.clear();
  }
  void Wait(int pending) {
    while (static_cast<int>(groups_.size()) > pending) {
      for (const Pending& c : groups_.front()) Land(c);
      groups_.pop_front();
    }
  }

 private:
  struct Pending {
    uint32_t dst;
    std::array<uint16_t, 8> data;
  };
  void Land(const Pending& c) {
    for (int e = 0; e < 8; ++e) StoreBf16(smem_, c.dst + 2 * e, c.data[static_cast<size_t>(e)]);
  }
  Smem& smem_;
  Landing landing_;
  std::vector<Pending> open_;
  std::deque<std::vector<Pending>> groups_;
};

// float64 softmax(q·kᵀ·scale)·v of the same bf16 inputs.
inline std::vector<double> Exact(const Problem& pr) {
  std::vector<double> out(static_cast<size_t>(pr.nq) * pr.heads * pr.dh);
  std::vector<double> s(static_cast<size_t>(pr.nk));
  auto at = [&](const uint16_t* base, int token, int head, int d) {
    return double{Bf16ToFloat(base[token * pr.row() + head * pr.dh + d])};
  };
  for (int h = 0; h < pr.heads; ++h) {
    for (int i = 0; i < pr.nq; ++i) {
      for (int j = 0; j < pr.nk; ++j) {
        double dot = 0;
        for (int d = 0; d < pr.dh; ++d) dot += at(pr.q(), i, h, d) * at(pr.k(), j, h, d);
        s[j] = dot * pr.scale;
      }
      const double max = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += x = std::exp(x - max);
      for (int d = 0; d < pr.dh; ++d) {
        double acc = 0;
        for (int j = 0; j < pr.nk; ++j) acc += s[j] * at(pr.v(), j, h, d);
        out[(static_cast<size_t>(i) * pr.heads + h) * pr.dh + d] = acc / sum;
      }
    }
  }
  return out;
}

// Largest |got − want| / (|want| + rms(want)); NaN (an unwritten output) counts as infinite.
inline double WorstError(const std::vector<float>& got, const std::vector<double>& want) {
  double ss = 0;
  for (double w : want) ss += w * w;
  const double rms = std::sqrt(ss / static_cast<double>(want.size()));
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(got[i] - want[i]) / (std::abs(want[i]) + rms);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst;
}

// bf16 P (8 mantissa bits) costs ~2⁻⁹ relative per weight, averaged over the keys.
constexpr double kBf16Tol = 1e-2;

inline std::mt19937 Rng() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::mt19937(static_cast<uint32_t>(std::hash<std::string>{}(info->name())));
}

}  // namespace ds::cuda::flash::emu
