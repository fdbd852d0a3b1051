#include "core/patchify.h"

#include <cstddef>

namespace ds {
namespace {

// Calls visit(latent offset) for every latent element in token order: tokens in (t, h, w)
// row-major order, each token's elements in (c, dt, dy, dx) order, or (dt, dy, dx, c) when
// channels_last. Both directions walk this one order, so they cannot disagree.
template <typename Visit>
void WalkPatches(int C, int T, int H, int W, std::array<int, 3> p, bool channels_last, Visit&& visit) {
  const int gt = T / p[0], gh = H / p[1], gw = W / p[2];
  auto offset = [&](int c, int t, int y, int x) { return ((static_cast<size_t>(c) * T + t) * H + y) * W + x; };
  for (int ti = 0; ti < gt; ++ti)
    for (int hi = 0; hi < gh; ++hi)
      for (int wi = 0; wi < gw; ++wi) {
        const int t0 = ti * p[0], y0 = hi * p[1], x0 = wi * p[2];
        if (channels_last) {
          for (int dt = 0; dt < p[0]; ++dt)
            for (int dy = 0; dy < p[1]; ++dy)
              for (int dx = 0; dx < p[2]; ++dx)
                for (int c = 0; c < C; ++c) visit(offset(c, t0 + dt, y0 + dy, x0 + dx));
        } else {
          for (int c = 0; c < C; ++c)
            for (int dt = 0; dt < p[0]; ++dt)
              for (int dy = 0; dy < p[1]; ++dy)
                for (int dx = 0; dx < p[2]; ++dx) visit(offset(c, t0 + dt, y0 + dy, x0 + dx));
        }
      }
}

}  // namespace

void Patchify(const float* latent, int C, int T, int H, int W, std::array<int, 3> p, float* tokens) {
  WalkPatches(C, T, H, W, p, /*channels_last=*/false, [&](size_t i) { *tokens++ = latent[i]; });
}

void Unpatchify(const float* tokens, int C, int T, int H, int W, std::array<int, 3> p, float* latent,
                bool channels_last) {
  WalkPatches(C, T, H, W, p, channels_last, [&](size_t i) { latent[i] = *tokens++; });
}

}  // namespace ds
