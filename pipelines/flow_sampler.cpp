#include "pipelines/flow_sampler.h"

#include <utility>

#include "pipelines/scheduler.h"

namespace ds {

const char* SamplerName(SamplerKind kind) { return kind == SamplerKind::kUniPc ? "unipc" : "euler"; }

SamplerKind ResolveSampler(std::string_view option, SamplerKind model_default) {
  if (option == "euler") return SamplerKind::kEuler;
  if (option == "unipc") return SamplerKind::kUniPc;
  return model_default;  // "auto" (the option table refuses anything else)
}

FlowSampler FlowSampler::Euler(std::vector<float> sigmas, int train_timesteps) {
  FlowSampler s;
  s.sigmas_ = std::move(sigmas);
  s.train_timesteps_ = train_timesteps;
  return s;
}

FlowSampler FlowSampler::UniPc(int steps, double shift, int train_timesteps) {
  FlowSampler s;
  s.unipc_.emplace(steps, shift, train_timesteps);
  s.train_timesteps_ = train_timesteps;
  return s;
}

float FlowSampler::sigma(int i) const { return unipc_ ? unipc_->schedule().sigmas[i] : sigmas_[i]; }

float FlowSampler::timestep(int i) const {
  if (unipc_) return static_cast<float>(unipc_->schedule().timesteps[i]);
  return sigmas_[i] * static_cast<float>(train_timesteps_);
}

void FlowSampler::Step(int i, std::span<const float> v, std::span<float> x) {
  if (unipc_) {
    unipc_->Step(v, x);  // UniPC keeps its own step count (and history)
  } else {
    EulerStep(x, v, sigmas_[i], sigmas_[i + 1]);
  }
}

}  // namespace ds
