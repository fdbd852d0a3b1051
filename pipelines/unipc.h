// UniPC multistep sampling for flow-prediction models, exactly as diffusers' UniPCMultistepScheduler
// with the configuration Wan2.1 publishes (reference/wan21_spec.md §5.3–5.5): use_flow_sigmas,
// flow_shift, solver_order 2, bh2, predict_x0, lower_order_final, corrector on, final sigma 0.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ds {

struct FlowSchedule {
  std::vector<int64_t> timesteps;  // `steps` integer timesteps handed to the model
  std::vector<float> sigmas;       // steps + 1, ending with 0
};

// s_k = shift·u/(1 + (shift − 1)·u) for u = linspace(1, 1/train_timesteps, steps + 1)[k], k < steps
// (float64, numpy's linspace arithmetic); s_0 = 1 − 1e-6 when it would be 1; t_k = trunc(s_k·1000).
FlowSchedule UniPcFlowSchedule(int steps, double shift, int train_timesteps = 1000);

class UniPcSampler {
 public:
  // steps ≥ 1, shift > 0.
  UniPcSampler(int steps, double shift, int train_timesteps = 1000);

  const FlowSchedule& schedule() const { return s_; }
  int steps() const { return static_cast<int>(s_.timesteps.size()); }
  // The step Step() will take next; its model timestep is schedule().timesteps[step_index()].
  int step_index() const { return i_; }

  // One step: x holds the sample the model saw (fp32 latents), v the model's flow prediction for
  // it; x becomes the next sample (after the last step, the final x0 prediction).
  void Step(std::span<const float> v, std::span<float> x);

 private:
  double Lambda(int k) const;  // log(alpha) − log(sigma) of sigma k

  FlowSchedule s_;
  int i_ = 0, lower_order_nums_ = 0, prev_order_ = 0;
  std::vector<float> m_older_, m_prev_, m_, last_sample_;  // x0 predictions m_{i−2}, m_{i−1}, m_i
};

}  // namespace ds
