#include "pipelines/unipc.h"

#include <algorithm>
#include <cmath>

namespace ds {

FlowSchedule UniPcFlowSchedule(int steps, double shift, int train_timesteps) {
  FlowSchedule s;
  const double start = 1.0, stop = 1.0 / train_timesteps, step = (stop - start) / steps;
  std::vector<double> sig(steps);
  for (int k = 0; k < steps; ++k) {
    const double u = k * step + start;
    sig[k] = shift * u / (1.0 + (shift - 1.0) * u);
  }
  // A sigma of exactly 1 would make log(alpha) = −inf in the first updates.
  if (steps > 0 && std::fabs(sig[0] - 1.0) < 1e-6) sig[0] -= 1e-6;
  for (int k = 0; k < steps; ++k) {
    s.timesteps.push_back(static_cast<int64_t>(sig[k] * train_timesteps));
    s.sigmas.push_back(static_cast<float>(sig[k]));
  }
  s.sigmas.push_back(0.0f);
  return s;
}

UniPcSampler::UniPcSampler(int steps, double shift, int train_timesteps)
    : s_(UniPcFlowSchedule(std::max(steps, 1), shift, train_timesteps)) {}

double UniPcSampler::Lambda(int k) const {
  const double sigma = s_.sigmas[k];
  return std::log(1.0 - sigma) - std::log(sigma);
}

void UniPcSampler::Step(std::span<const float> v, std::span<float> x) {
  const int i = i_, n = steps();
  if (i >= n) return;
  const size_t size = x.size();
  const double s_i = s_.sigmas[i], alpha_i = 1.0 - s_i;

  // Flow prediction → x0 prediction, from the sample as the model saw it.
  m_.resize(size);
  const float sf = static_cast<float>(s_i);
  for (size_t j = 0; j < size; ++j) m_[j] = x[j] - sf * v[j];

  // Corrector (UniC, bh2) of x_i from x_{i−1}, with the order the previous predictor used.
  if (i > 0) {
    const double h = Lambda(i) - Lambda(i - 1), hh = -h, phi1 = std::expm1(hh), b_h = phi1;
    double rho0 = 0.0, rho_last = 0.5, r = 1.0;
    if (prev_order_ == 2) {
      r = (Lambda(i - 2) - Lambda(i - 1)) / h;
      const double phi_k = phi1 / hh - 1.0;
      const double b1 = phi_k / b_h, b2 = (phi_k / hh - 0.5) * 2.0 / b_h;
      rho0 = (b1 - b2) / (1.0 - r);  // solves [[1, 1], [r, 1]]·ρ = [b1, b2]
      rho_last = b1 - rho0;
    }
    const float a = static_cast<float>(s_i / s_.sigmas[i - 1]);
    const float c0 = static_cast<float>(alpha_i * phi1), c1 = static_cast<float>(alpha_i * b_h);
    const float k_corr = static_cast<float>(rho0 / r), k_last = static_cast<float>(rho_last);
    for (size_t j = 0; j < size; ++j) {
      const float m0 = m_prev_[j];
      const float corr = prev_order_ == 2 ? k_corr * (m_older_[j] - m0) : 0.0f;
      x[j] = a * last_sample_[j] - c0 * m0 - c1 * (corr + k_last * (m_[j] - m0));
    }
  }

  std::swap(m_older_, m_prev_);
  m_prev_.swap(m_);  // m_prev_ = m_i, m_older_ = m_{i−1}
  const int order = std::min({2, n - i, lower_order_nums_ + 1});
  last_sample_.assign(x.begin(), x.end());

  // Predictor (UniP, bh2) to sigma i + 1; the final sigma 0 gives the x0 prediction itself.
  const double s_next = s_.sigmas[i + 1];
  if (s_next == 0.0) {
    std::copy(m_prev_.begin(), m_prev_.end(), x.begin());
  } else {
    const double alpha_next = 1.0 - s_next, h = Lambda(i + 1) - Lambda(i), hh = -h, phi1 = std::expm1(hh);
    const float a = static_cast<float>(s_next / s_i), c0 = static_cast<float>(alpha_next * phi1);
    const float c1 =
        order == 2 ? static_cast<float>(alpha_next * phi1 * 0.5 / ((Lambda(i - 1) - Lambda(i)) / h)) : 0.0f;
    for (size_t j = 0; j < size; ++j) {
      const float d1 = order == 2 ? m_older_[j] - m_prev_[j] : 0.0f;
      x[j] = a * x[j] - c0 * m_prev_[j] - c1 * d1;
    }
  }
  lower_order_nums_ = std::min(lower_order_nums_ + 1, 2);
  prev_order_ = order;
  ++i_;
}

}  // namespace ds
