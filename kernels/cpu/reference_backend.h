// The naive reference backend: one obvious loop nest per op, float64 accumulation, one thread.
// It is the oracle every other backend is tested against, so clarity beats speed here.
#pragma once

#include "core/backend.h"

namespace ds {

class ReferenceBackend final : public Backend {
 public:
  const char* name() const override { return "reference"; }
  Device device() const override { return Device::kCpu; }
  void set_threads(int) override {}
  int threads() const override { return 1; }

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps,
                  Tensor& y) override;
  void layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                           Tensor& y) override;
  void rms_norm(Tensor& x, const Tensor& weight, float eps) override;
  void gate_residual(Tensor& x, const Tensor& gate, const Tensor& f) override;
  void add(Tensor& x, const Tensor& f) override;
  void gelu_tanh(Tensor& x) override;
  void silu(Tensor& x) override;
  void rope(Tensor& x, const Tensor& cos, const Tensor& sin) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                 Tensor& o) override;
  void conv3x3(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) override;
  void upsample_nearest2x(const Tensor& x, Tensor& y) override;
  void transpose(const Tensor& x, Tensor& y) override;
};

}  // namespace ds
