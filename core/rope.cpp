#include "core/rope.h"

#include <cmath>

namespace ds {
namespace {

// Positions of token index i along each axis of the (t, h, w) grid.
std::array<int, 3> GridPosition(int i, int grid_h, int grid_w) {
  return {i / (grid_h * grid_w), (i / grid_w) % grid_h, i % grid_w};
}

}  // namespace

RopeTable BuildRope3d(int grid_t, int grid_h, int grid_w, std::array<int, 3> axes, double theta) {
  const int tokens = grid_t * grid_h * grid_w;
  const int pairs = (axes[0] + axes[1] + axes[2]) / 2;
  RopeTable table;
  table.cos.resize(static_cast<size_t>(tokens) * pairs);
  table.sin.resize(table.cos.size());
  for (int i = 0; i < tokens; ++i) {
    const std::array<int, 3> pos = GridPosition(i, grid_h, grid_w);
    int pair = 0;
    for (int axis = 0; axis < 3; ++axis) {
      for (int j = 0; j < axes[axis] / 2; ++j, ++pair) {
        const double angle = pos[axis] * std::pow(theta, -2.0 * j / axes[axis]);
        table.cos[static_cast<size_t>(i) * pairs + pair] = static_cast<float>(std::cos(angle));
        table.sin[static_cast<size_t>(i) * pairs + pair] = static_cast<float>(std::sin(angle));
      }
    }
  }
  return table;
}

std::vector<float> BuildSinCos3d(int grid_t, int grid_h, int grid_w, std::array<int, 3> axes) {
  const int tokens = grid_t * grid_h * grid_w;
  const int dim = axes[0] + axes[1] + axes[2];
  std::vector<float> emb(static_cast<size_t>(tokens) * dim);
  for (int i = 0; i < tokens; ++i) {
    const std::array<int, 3> pos = GridPosition(i, grid_h, grid_w);
    float* row = emb.data() + static_cast<size_t>(i) * dim;
    for (int axis = 0; axis < 3; ++axis) {
      const int half = axes[axis] / 2;
      for (int j = 0; j < half; ++j) {
        const double angle = pos[axis] * std::pow(10000.0, -2.0 * j / axes[axis]);
        row[j] = static_cast<float>(std::sin(angle));
        row[half + j] = static_cast<float>(std::cos(angle));
      }
      row += axes[axis];
    }
  }
  return emb;
}

}  // namespace ds
