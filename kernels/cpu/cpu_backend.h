// The optimized CPU backend: GEMMs through OpenBLAS, flash-style attention, OpenMP row loops with
// ISA-multiversioned inner kernels. One instance serves one pipeline: its scratch buffers make it
// unsafe to call from two threads at once.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace ds {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads = 0);

  const char* name() const override { return "cpu"; }
  Device device() const override { return Device::kCpu; }
  void set_threads(int threads) override;
  int threads() const override { return threads_; }

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
  void widen(const Tensor& src, Tensor& dst, float scale) override;

 private:
  // Grows only, so steady-state generation allocates nothing.
  float* scratch(int64_t count);

  int threads_ = 1;
  std::vector<float> scratch_;
};

}  // namespace ds
