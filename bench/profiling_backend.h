// A Backend decorator that times every op of the backend it wraps, by category (GEMM, attention,
// other), and records each GEMM's shape so that the benchmark can time raw sgemm on the same shapes.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <tuple>

#include "core/backend.h"

namespace ds::bench {

class ProfilingBackend final : public Backend {
 public:
  using Shape = std::tuple<int64_t, int64_t, int64_t>;  // M, N, K
  explicit ProfilingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  struct Profile {
    double gemm_s = 0, attention_s = 0, other_s = 0, attention_flops = 0;
    std::map<Shape, int> gemm_shapes;  // shape → calls
  };
  Profile profile;
  void Reset() { profile = {}; }

  const char* name() const override { return inner_->name(); }
  Device device() const override { return inner_->device(); }
  void set_threads(int t) override { inner_->set_threads(t); }
  int threads() const override { return inner_->threads(); }

  void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override {
    ++profile.gemm_shapes[{x.shape[0], w.shape[0], w.shape[1]}];
    Time(profile.gemm_s, [&] { inner_->linear(x, w, b, y); });
  }
  bool LinearAcceptsWeights(DType dtype) const override { return inner_->LinearAcceptsWeights(dtype); }
  void linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override {
    ++profile.gemm_shapes[{x.shape[0], w.shape[0], w.shape[1]}];
    Time(profile.gemm_s, [&] { inner_->linear_gelu_tanh(x, w, b, y); });
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& o) override {
    profile.attention_flops += 4.0 * q.shape[0] * k.shape[0] * q.shape[1] * q.shape[2];
    Time(profile.attention_s, [&] { inner_->attention(q, k, v, scale, o); });
  }
  void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) override {
    Time(profile.other_s, [&] { inner_->layer_norm(x, w, b, eps, y); });
  }
  void layer_norm_modulate(const Tensor& x, const Tensor& sh, const Tensor& sc, float eps, Tensor& y) override {
    Time(profile.other_s, [&] { inner_->layer_norm_modulate(x, sh, sc, eps, y); });
  }
  void rms_norm(Tensor& x, const Tensor& w, float eps) override {
    Time(profile.other_s, [&] { inner_->rms_norm(x, w, eps); });
  }
  void gate_residual(Tensor& x, const Tensor& g, const Tensor& f) override {
    Time(profile.other_s, [&] { inner_->gate_residual(x, g, f); });
  }
  void add(Tensor& x, const Tensor& f) override {
    Time(profile.other_s, [&] { inner_->add(x, f); });
  }
  void gelu_tanh(Tensor& x) override {
    Time(profile.other_s, [&] { inner_->gelu_tanh(x); });
  }
  void silu(Tensor& x) override {
    Time(profile.other_s, [&] { inner_->silu(x); });
  }
  void rope(Tensor& x, const Tensor& c, const Tensor& s) override {
    Time(profile.other_s, [&] { inner_->rope(x, c, s); });
  }
  void rms_norm_rope(Tensor& x, const Tensor& w, float eps, const Tensor& c, const Tensor& s, int64_t heads) override {
    Time(profile.other_s, [&] { inner_->rms_norm_rope(x, w, eps, c, s, heads); });
  }
  void mul(Tensor& x, const Tensor& f) override {
    Time(profile.other_s, [&] { inner_->mul(x, f); });
  }
  void sub(Tensor& x, const Tensor& f) override {
    Time(profile.other_s, [&] { inner_->sub(x, f); });
  }
  void abs_diff_sums(const Tensor& a, const Tensor& b, Tensor& sums) override {
    Time(profile.other_s, [&] { inner_->abs_diff_sums(a, b, sums); });
  }
  void softmax_relative_bias(Tensor& scores, const Tensor& bias) override {
    Time(profile.other_s, [&] { inner_->softmax_relative_bias(scores, bias); });
  }
  void conv3x3(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    Time(profile.other_s, [&] { inner_->conv3x3(x, w, b, y); });
  }
  void upsample_nearest2x(const Tensor& x, Tensor& y) override {
    Time(profile.other_s, [&] { inner_->upsample_nearest2x(x, y); });
  }
  void transpose(const Tensor& x, Tensor& y) override {
    Time(profile.other_s, [&] { inner_->transpose(x, y); });
  }
  // Memory goes to the wrapped backend: its buffers are what the ops above receive.
  Result<BackendBuffer> NewBuffer(DType dtype, std::initializer_list<int64_t> shape) override {
    return inner_->NewBuffer(dtype, shape);
  }
  Status CopyToBackend(const Tensor& host, const Tensor& dst) override { return inner_->CopyToBackend(host, dst); }
  Status CopyToHost(const Tensor& src, const Tensor& host) override { return inner_->CopyToHost(src, host); }
  Status Zero(const Tensor& dst) override { return inner_->Zero(dst); }
  size_t WorkingSetBudget() const override { return inner_->WorkingSetBudget(); }
  void copy(const Tensor& src, Tensor& dst) override {
    Time(profile.other_s, [&] { inner_->copy(src, dst); });
  }
  void widen(const Tensor& src, Tensor& dst, float scale) override {
    Time(profile.other_s, [&] { inner_->widen(src, dst, scale); });
  }
  // The rest of Backend, forwarded too: the base class's defaults are host code, which is not what
  // the wrapped backend runs (and reads device memory as host memory on a GPU backend).
  void linear_residual(const Tensor& a, const Tensor& w, const Tensor* b, const Tensor* g, Tensor& x,
                       Tensor& scratch) override {
    ++profile.gemm_shapes[{a.shape[0], w.shape[0], w.shape[1]}];
    Time(profile.gemm_s, [&] { inner_->linear_residual(a, w, b, g, x, scratch); });
  }
  void patchify(const Tensor& latent, std::array<int, 3> patch, Tensor& tokens) override {
    Time(profile.other_s, [&] { inner_->patchify(latent, patch, tokens); });
  }
  void unpatchify(const Tensor& tokens, std::array<int, 3> patch, bool channels_last, Tensor& latent) override {
    Time(profile.other_s, [&] { inner_->unpatchify(tokens, patch, channels_last, latent); });
  }
  void planar_to_pixels(const Tensor& planar, FrameFormat format, Tensor& frame) override {
    Time(profile.other_s, [&] { inner_->planar_to_pixels(planar, format, frame); });
  }
  // Not timed as one op: the recorded ops time themselves through this wrapper when they are issued.
  Status RunRecorded(std::unique_ptr<OpRecording>& recording, const std::function<Status()>& ops) override {
    return inner_->RunRecorded(recording, ops);
  }

 private:
  template <typename F>
  static void Time(double& acc, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    acc += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::unique_ptr<Backend> inner_;
};

}  // namespace ds::bench
