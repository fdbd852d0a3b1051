#include "kernels/cpu/reference_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "kernels/cpu/rows.h"

namespace ds {
namespace {

// Mean and 1/sqrt(var + eps) of one row, in float64.
void RowMoments(const float* x, int64_t d, float eps, double& mean, double& rstd) {
  double sum = 0;
  for (int64_t i = 0; i < d; ++i) sum += x[i];
  mean = sum / static_cast<double>(d);
  double var = 0;
  for (int64_t i = 0; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
  rstd = 1.0 / std::sqrt(var / static_cast<double>(d) + eps);
}

template <typename Fn>
void ForEachElement(Tensor& x, Fn fn) {
  Rows rows(x);
  for (int64_t r = 0; r < rows.count(); ++r) {
    float* row = rows[r];
    for (int64_t i = 0; i < rows.width(); ++i) row[i] = fn(row[i]);
  }
}

}  // namespace

void ReferenceBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  Rows xr(x), wr(w), yr(y);
  for (int64_t m = 0; m < xr.count(); ++m) {
    for (int64_t n = 0; n < wr.count(); ++n) {
      double acc = bias ? bias->f32()[n] : 0.0;
      for (int64_t k = 0; k < xr.width(); ++k) acc += static_cast<double>(xr[m][k]) * wr[n][k];
      yr[m][n] = static_cast<float>(acc);
    }
  }
}

void ReferenceBackend::layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y) {
  Rows xr(x), yr(y);
  for (int64_t r = 0; r < xr.count(); ++r) {
    double mean, rstd;
    RowMoments(xr[r], xr.width(), eps, mean, rstd);
    for (int64_t i = 0; i < xr.width(); ++i) {
      double v = (xr[r][i] - mean) * rstd;
      if (weight) v *= weight->f32()[i];
      if (bias) v += bias->f32()[i];
      yr[r][i] = static_cast<float>(v);
    }
  }
}

void ReferenceBackend::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                           Tensor& y) {
  Rows xr(x), yr(y);
  for (int64_t r = 0; r < xr.count(); ++r) {
    double mean, rstd;
    RowMoments(xr[r], xr.width(), eps, mean, rstd);
    for (int64_t i = 0; i < xr.width(); ++i) {
      double v = (xr[r][i] - mean) * rstd * (1.0 + scale.f32()[i]) + shift.f32()[i];
      yr[r][i] = static_cast<float>(v);
    }
  }
}

void ReferenceBackend::rms_norm(Tensor& x, const Tensor& weight, float eps) {
  Rows xr(x);
  for (int64_t r = 0; r < xr.count(); ++r) {
    float* row = xr[r];
    double ss = 0;
    for (int64_t i = 0; i < xr.width(); ++i) ss += static_cast<double>(row[i]) * row[i];
    double inv = 1.0 / std::sqrt(ss / static_cast<double>(xr.width()) + eps);
    for (int64_t i = 0; i < xr.width(); ++i) row[i] = static_cast<float>(row[i] * inv * weight.f32()[i]);
  }
}

void ReferenceBackend::gate_residual(Tensor& x, const Tensor& gate, const Tensor& f) {
  Rows xr(x), fr(f);
  for (int64_t r = 0; r < xr.count(); ++r) {
    for (int64_t i = 0; i < xr.width(); ++i) {
      xr[r][i] = static_cast<float>(xr[r][i] + static_cast<double>(gate.f32()[i]) * fr[r][i]);
    }
  }
}

void ReferenceBackend::add(Tensor& x, const Tensor& f) {
  Rows xr(x), fr(f);
  for (int64_t r = 0; r < xr.count(); ++r) {
    for (int64_t i = 0; i < xr.width(); ++i) xr[r][i] += fr[r][i];
  }
}

void ReferenceBackend::gelu_tanh(Tensor& x) {
  const double c = std::sqrt(2.0 / std::numbers::pi);
  ForEachElement(
      x, [c](double v) { return static_cast<float>(0.5 * v * (1.0 + std::tanh(c * (v + 0.044715 * v * v * v)))); });
}

void ReferenceBackend::silu(Tensor& x) {
  ForEachElement(x, [](double v) { return static_cast<float>(v / (1.0 + std::exp(-v))); });
}

void ReferenceBackend::rope(Tensor& x, const Tensor& cos, const Tensor& sin) {
  const int64_t n_tokens = x.shape[0], heads = x.shape[1], half = x.shape[2] / 2;
  Rows xr(x), cr(cos), sr(sin);
  for (int64_t n = 0; n < n_tokens; ++n) {
    for (int64_t h = 0; h < heads; ++h) {
      float* row = xr[n * heads + h];
      for (int64_t j = 0; j < half; ++j) {
        double x0 = row[2 * j], x1 = row[2 * j + 1], c = cr[n][j], s = sr[n][j];
        row[2 * j] = static_cast<float>(x0 * c - x1 * s);
        row[2 * j + 1] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
}

// Materialises one row of scores per query: fine for an oracle, never for the real backends.
void ReferenceBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& o) {
  const int64_t nq = q.shape[0], nk = k.shape[0], heads = q.shape[1], dh = q.shape[2];
  Rows qr(q), kr(k), vr(v), orows(o);
  std::vector<double> p(static_cast<size_t>(nk)), acc(static_cast<size_t>(dh));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < nq; ++i) {
      const float* qi = qr[i * heads + h];
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < nk; ++j) {
        const float* kj = kr[j * heads + h];
        double s = 0;
        for (int64_t d = 0; d < dh; ++d) s += static_cast<double>(qi[d]) * kj[d];
        p[j] = s * scale;
        max = std::max(max, p[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < nk; ++j) sum += p[j] = std::exp(p[j] - max);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < nk; ++j) {
        const float* vj = vr[j * heads + h];
        for (int64_t d = 0; d < dh; ++d) acc[d] += p[j] * vj[d];
      }
      float* oi = orows[i * heads + h];
      for (int64_t d = 0; d < dh; ++d) oi[d] = static_cast<float>(acc[d] / sum);
    }
  }
}

void ReferenceBackend::conv3x3(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  const int64_t c_in = x.shape[0], height = x.shape[1], width = x.shape[2], c_out = w.shape[0];
  Rows xr(x), yr(y);
  const float* wf = w.f32();
  for (int64_t o = 0; o < c_out; ++o) {
    for (int64_t i = 0; i < height; ++i) {
      for (int64_t j = 0; j < width; ++j) {
        double acc = bias.f32()[o];
        for (int64_t c = 0; c < c_in; ++c) {
          for (int64_t di = -1; di <= 1; ++di) {
            for (int64_t dj = -1; dj <= 1; ++dj) {
              int64_t si = i + di, sj = j + dj;
              if (si < 0 || si >= height || sj < 0 || sj >= width) continue;
              acc += static_cast<double>(wf[((o * c_in + c) * 3 + di + 1) * 3 + dj + 1]) * xr[c * height + si][sj];
            }
          }
        }
        yr[o * height + i][j] = static_cast<float>(acc);
      }
    }
  }
}

void ReferenceBackend::upsample_nearest2x(const Tensor& x, Tensor& y) {
  const int64_t channels = x.shape[0], height = x.shape[1], width = x.shape[2];
  Rows xr(x), yr(y);
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < 2 * height; ++i) {
      for (int64_t j = 0; j < 2 * width; ++j) yr[c * 2 * height + i][j] = xr[c * height + i / 2][j / 2];
    }
  }
}

void ReferenceBackend::transpose(const Tensor& x, Tensor& y) {
  Rows xr(x), yr(y);
  for (int64_t r = 0; r < xr.count(); ++r)
    for (int64_t c = 0; c < xr.width(); ++c) yr[c][r] = xr[r][c];
}

}  // namespace ds
