// 3D patchify / unpatchify between a latent [C, T, H, W] and tokens in (t, h, w) row-major order,
// each token's vector in (c, dt, dy, dx) order: the order of a Conv3d (stride = kernel) weight
// flattened to [d, C·pt·ph·pw], shared by every model family's patch embedding. A head may order
// its output channels last, (dt, dy, dx, c) (Wan's proj_out): `channels_last`.
#pragma once

#include <array>

namespace ds {

void Patchify(const float* latent, int C, int T, int H, int W, std::array<int, 3> p, float* tokens);
void Unpatchify(const float* tokens, int C, int T, int H, int W, std::array<int, 3> p, float* latent,
                bool channels_last = false);

}  // namespace ds
