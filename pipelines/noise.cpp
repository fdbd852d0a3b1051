#include "pipelines/noise.h"

#include <cmath>
#include <numbers>

namespace ds {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

NoiseGenerator::NoiseGenerator(uint64_t seed) {
  uint64_t sm = seed;
  for (uint64_t& s : s_) s = SplitMix64(sm);
}

uint64_t NoiseGenerator::NextU64() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

void NoiseGenerator::FillNormal(std::span<float> out) {
  constexpr double kScale = 1.0 / 9007199254740992.0;  // 2^−53
  for (size_t i = 0; i < out.size(); i += 2) {
    const double u1 = static_cast<double>(NextU64() >> 11) * kScale;
    const double u2 = static_cast<double>(NextU64() >> 11) * kScale;
    const double r = std::sqrt(-2.0 * std::log(1.0 - u1));
    out[i] = static_cast<float>(r * std::cos(2.0 * std::numbers::pi * u2));
    if (i + 1 < out.size()) out[i + 1] = static_cast<float>(r * std::sin(2.0 * std::numbers::pi * u2));
  }
}

}  // namespace ds
