// Position encodings over the (t, h, w) patch grid: 3D RoPE angle tables and 3D sin-cos embeddings.
#pragma once

#include <array>
#include <vector>

namespace ds {

struct RopeTable {
  std::vector<float> cos, sin;  // [tokens, head_dim/2], tokens in (t, h, w) row-major order
};

// Pair j of axis k (a_k dims, a_k/2 pairs) at integer position p has angle p·θ^(−2j/a_k); the axes'
// pairs are concatenated in (t, h, w) order to cover head_dim/2 pairs.
RopeTable BuildRope3d(int grid_t, int grid_h, int grid_w, std::array<int, 3> axes, double theta);

// Fixed 3D sin-cos embedding [tokens, dim]: dim is split into (t, h, w) parts as given by axes
// (each even); each part is [sin(p·ω_0…), cos(p·ω_0…)] with ω_j = 10000^(−2j/a_k).
std::vector<float> BuildSinCos3d(int grid_t, int grid_h, int grid_w, std::array<int, 3> axes);

}  // namespace ds
