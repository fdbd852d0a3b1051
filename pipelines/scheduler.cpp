#include "pipelines/scheduler.h"

namespace ds {

std::vector<float> FlowSigmas(int steps, double shift) {
  std::vector<float> sigmas(steps + 1);
  for (int i = 0; i <= steps; ++i) {
    const double s = 1.0 - static_cast<double>(i) / steps;
    sigmas[i] = static_cast<float>(shift * s / (1.0 + (shift - 1.0) * s));
  }
  return sigmas;
}

void EulerStep(std::span<float> x, std::span<const float> v, float sigma, float sigma_next) {
  const float dt = sigma_next - sigma;
  for (size_t i = 0; i < x.size(); ++i) x[i] += dt * v[i];
}

void ApplyGuidance(std::span<float> v_cond, std::span<const float> v_uncond, float guidance) {
  for (size_t i = 0; i < v_cond.size(); ++i) v_cond[i] = v_uncond[i] + guidance * (v_cond[i] - v_uncond[i]);
}

}  // namespace ds
