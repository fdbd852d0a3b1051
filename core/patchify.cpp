#include "core/patchify.h"

#include <cstddef>

namespace ds {

// tokens[n, (c, dt, dy, dx)] ← latent[C, T, H, W]
void Patchify(const float* latent, int C, int T, int H, int W, std::array<int, 3> p, float* tokens) {
  const int gt = T / p[0], gh = H / p[1], gw = W / p[2];
  float* dst = tokens;
  for (int ti = 0; ti < gt; ++ti)
    for (int hi = 0; hi < gh; ++hi)
      for (int wi = 0; wi < gw; ++wi)
        for (int c = 0; c < C; ++c)
          for (int dt = 0; dt < p[0]; ++dt)
            for (int dy = 0; dy < p[1]; ++dy) {
              const float* src = latent + ((static_cast<size_t>(c) * T + ti * p[0] + dt) * H + hi * p[1] + dy) * W +
                                 wi * p[2];
              for (int dx = 0; dx < p[2]; ++dx) *dst++ = src[dx];
            }
}

// latent[C, T, H, W] ← tokens[n, (c, dt, dy, dx)]
void Unpatchify(const float* tokens, int C, int T, int H, int W, std::array<int, 3> p, float* latent) {
  const int gt = T / p[0], gh = H / p[1], gw = W / p[2];
  const float* src = tokens;
  for (int ti = 0; ti < gt; ++ti)
    for (int hi = 0; hi < gh; ++hi)
      for (int wi = 0; wi < gw; ++wi)
        for (int c = 0; c < C; ++c)
          for (int dt = 0; dt < p[0]; ++dt)
            for (int dy = 0; dy < p[1]; ++dy) {
              float* dst = latent + ((static_cast<size_t>(c) * T + ti * p[0] + dt) * H + hi * p[1] + dy) * W +
                           wi * p[2];
              for (int dx = 0; dx < p[2]; ++dx) dst[dx] = *src++;
            }
}

}  // namespace ds
