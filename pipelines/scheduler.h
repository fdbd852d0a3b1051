// Flow-matching Euler scheduler with timestep shift (rectified flow, as in SD3 / Wan's
// FlowMatchEulerDiscreteScheduler): x_t = (1 − σ)·x_0 + σ·ε, the model predicts v = ε − x_0.
#pragma once

#include <span>
#include <vector>

namespace ds {

// steps + 1 sigmas from 1 down to 0: σ_i = shift·s/(1 + (shift − 1)·s) with s = 1 − i/steps.
std::vector<float> FlowSigmas(int steps, double shift);

// The steps + 1 sigmas (ending with 0) of diffusers' FlowMatchEulerDiscreteScheduler with `shift`
// and no dynamic shifting, as a Wan folder may declare it (reference/wan21_spec.md §5.6): the shift is
// applied twice, once to the training range and once to the spaced values. Model timestep i is
// sigma_i · train_timesteps, not truncated.
std::vector<float> FlowMatchEulerSigmas(int steps, double shift, int train_timesteps = 1000);

// One Euler step: x ← x + (σ_next − σ)·v.
void EulerStep(std::span<float> x, std::span<const float> v, float sigma, float sigma_next);

// Classifier-free guidance: v = v_u + g·(v_c − v_u), written into v_c.
void ApplyGuidance(std::span<float> v_cond, std::span<const float> v_uncond, float guidance);

}  // namespace ds
