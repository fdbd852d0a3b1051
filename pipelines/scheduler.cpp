#include "pipelines/scheduler.h"

#include <algorithm>

namespace ds {

std::vector<float> FlowSigmas(int steps, double shift) {
  std::vector<float> sigmas(steps + 1);
  for (int i = 0; i <= steps; ++i) {
    const double s = 1.0 - static_cast<double>(i) / steps;
    sigmas[i] = static_cast<float>(shift * s / (1.0 + (shift - 1.0) * s));
  }
  return sigmas;
}

std::vector<float> FlowMatchEulerSigmas(int steps, double shift, int train_timesteps) {
  // The training range in float32 tensor arithmetic: sigma_max = shift(1) = 1, sigma_min = shift(1/N).
  const float s = static_cast<float>(shift), lo = 1.0f / static_cast<float>(train_timesteps);
  const double sigma_min = s * lo / (1.0f + (s - 1.0f) * lo), sigma_max = 1.0;
  // numpy.linspace(sigma_max·N, sigma_min·N, steps) in float64, then /N, shifted again, to float32.
  const double start = sigma_max * train_timesteps, stop = sigma_min * train_timesteps;
  std::vector<float> sigmas(steps + 1, 0.0f);
  for (int i = 0; i < steps; ++i) {
    const double t = i == steps - 1 && steps > 1 ? stop : start + i * ((stop - start) / std::max(steps - 1, 1));
    const double u = t / train_timesteps;
    sigmas[i] = static_cast<float>(shift * u / (1.0 + (shift - 1.0) * u));
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
