// Where each value of a patchified tensor lives in its latent (core/patchify.h's orders), as one
// host-device function: the patchify and unpatchify kernels gather and scatter through it, and the
// CPU tests (tests/cuda/test_patch_index.cpp) check it against core's Patchify and Unpatchify.
#pragma once

#include <cstdint>

#include "kernels/cuda/hd.h"

namespace ds::cuda {

struct PatchGeometry {
  int channels = 0, frames = 0, height = 0, width = 0;  // the latent [C, T, H, W]
  int pt = 1, ph = 1, pw = 1;                           // the 3D patch
  bool channels_last = false;                           // token values (dt, dy, dx, c), else (c, dt, dy, dx)

  DS_HD int64_t TokenLength() const { return int64_t{channels} * pt * ph * pw; }
  DS_HD int64_t Elements() const { return int64_t{channels} * frames * height * width; }
};

// The latent offset of element e of the tokens [N, C·pt·ph·pw] (row-major, N in (t, h, w) order).
DS_HD int64_t PatchLatentOffset(const PatchGeometry& g, int64_t e) {
  const int64_t len = g.TokenLength(), token = e / len;
  int64_t j = e % len;
  int64_t c, dt, dy, dx;
  if (g.channels_last) {
    c = j % g.channels;
    j /= g.channels;
    dx = j % g.pw;
    j /= g.pw;
    dy = j % g.ph;
    dt = j / g.ph;
  } else {
    dx = j % g.pw;
    j /= g.pw;
    dy = j % g.ph;
    j /= g.ph;
    dt = j % g.pt;
    c = j / g.pt;
  }
  const int64_t gw = g.width / g.pw, gh = g.height / g.ph;
  const int64_t wi = token % gw, hi = token / gw % gh, ti = token / (gw * gh);
  return ((c * g.frames + ti * g.pt + dt) * g.height + hi * g.ph + dy) * g.width + wi * g.pw + dx;
}

}  // namespace ds::cuda
