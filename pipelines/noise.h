// The seeded Gaussian noise generator. Documented so that anyone can reproduce a video's initial
// noise: the state of xoshiro256** is seeded with four outputs of SplitMix64(seed); each pair of
// standard normals comes from two uniforms u1, u2 = (next() >> 11)·2^−53 by Box–Muller:
// r = sqrt(−2·ln(1 − u1)), n0 = r·cos(2π·u2), n1 = r·sin(2π·u2). Values fill the latent in
// [C, T, H, W] row-major order. Same seed, same build → bit-identical noise.
#pragma once

#include <cstdint>
#include <span>

namespace ds {

// The noise seed of clip `clip` of a generation seeded with `seed`, so that continued clips differ.
inline uint64_t ClipNoiseSeed(int64_t seed, int clip) {
  return static_cast<uint64_t>(seed) ^ (static_cast<uint64_t>(clip) * 0x9e3779b97f4a7c15ULL);
}

class NoiseGenerator {
 public:
  explicit NoiseGenerator(uint64_t seed);
  uint64_t NextU64();
  void FillNormal(std::span<float> out);

 private:
  uint64_t s_[4];
};

}  // namespace ds
