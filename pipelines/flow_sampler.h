// The denoising loop's sampler behind one interface, for both model families: the noise level and
// model timestep of each step, and the update of the latents from the (guided) flow prediction.
// The `sampler` option picks it; "auto" is the model's own (a Wan2.1 folder declares one in
// scheduler/scheduler_config.json, the demo model samples with Euler).
#pragma once

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "pipelines/unipc.h"

namespace ds {

enum class SamplerKind { kEuler, kUniPc };

const char* SamplerName(SamplerKind kind);  // "euler", "unipc": the option's values
// The kind the option's value names; `model_default` for "auto".
SamplerKind ResolveSampler(std::string_view option, SamplerKind model_default);

class FlowSampler {
 public:
  // Flow-matching Euler over `sigmas` (steps + 1, ending with 0): each family spaces its own.
  static FlowSampler Euler(std::vector<float> sigmas, int train_timesteps = 1000);
  // UniPC multistep (pipelines/unipc.h) over its own flow schedule.
  static FlowSampler UniPc(int steps, double shift, int train_timesteps = 1000);

  // The noise level the model sees at step i (the demo model's timestep input).
  float sigma(int i) const;
  // Step i's timestep on the training scale (Wan2.1's input): UniPC's integer timesteps, σ·1000 for Euler.
  float timestep(int i) const;
  // Step i: x (the sample the model saw) moves to step i + 1's noise level along v.
  void Step(int i, std::span<const float> v, std::span<float> x);

 private:
  FlowSampler() = default;
  std::optional<UniPcSampler> unipc_;
  std::vector<float> sigmas_;  // Euler: steps + 1, ending with 0
  int train_timesteps_ = 1000;
};

}  // namespace ds
