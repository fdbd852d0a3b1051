#include "core/patchify.h"

#include <cstddef>

namespace ds {
namespace {

// Calls visit(latent offset) for every latent element in token order: tokens in (t, h, w)
// row-major order, each token's elements in (c, dt, dy, dx) order. Both directions walk this one
// order, so they cannot disagree.
template <typename Visit>
void WalkPatches(int C, int T, int H, int W, std::array<int, 3> p, Visit&& visit) {
  const int gt = T / p[0], gh = H / p[1], gw = W / p[2];
  for (int ti = 0; ti < gt; ++ti)
    for (int hi = 0; hi < gh; ++hi)
      for (int wi = 0; wi < gw; ++wi)
        for (int c = 0; c < C; ++c)
          for (int dt = 0; dt < p[0]; ++dt)
            for (int dy = 0; dy < p[1]; ++dy) {
              const size_t row = ((static_cast<size_t>(c) * T + ti * p[0] + dt) * H + hi * p[1] + dy) * W + wi * p[2];
              for (int dx = 0; dx < p[2]; ++dx) visit(row + dx);
            }
}

}  // namespace

void Patchify(const float* latent, int C, int T, int H, int W, std::array<int, 3> p, float* tokens) {
  WalkPatches(C, T, H, W, p, [&](size_t i) { *tokens++ = latent[i]; });
}

void Unpatchify(const float* tokens, int C, int T, int H, int W, std::array<int, 3> p, float* latent) {
  WalkPatches(C, T, H, W, p, [&](size_t i) { latent[i] = *tokens++; });
}

}  // namespace ds
