// A CPU backend double that takes BF16 in linear the way the CUDA backend does (x rounded to
// bf16, products of bf16 values summed in f32 or better, a BF16 y rounded once after the bias and
// GELU, the bias rounded to bf16 for a BF16 y), so CI can run the Wan models' GPU-only BF16 path
// (BF16 matrices as stored or widened to BF16, BF16 FFN hidden rows) without a GPU. Everything
// else is the reference backend.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "kernels/cpu/reference_backend.h"

namespace ds::wan_test {

// x through bfloat16 (to nearest even) and back. (tests/kernels has the same helper, but its Rows
// class collides with core/layers.h's Rows, which the Wan tests use.)
inline float Bf16Rounded(float x) { return BFloat16ToFloat(FloatToBFloat16(x)); }

// Row r of a 2-D tensor (rows may be strided), element j, as float.
inline float At(const Tensor& t, int64_t r, int64_t j) {
  const char* row = static_cast<const char*>(t.data) + r * t.strides[0];
  if (t.dtype == DType::kBF16) return BFloat16ToFloat(reinterpret_cast<const uint16_t*>(row)[j]);
  return reinterpret_cast<const float*>(row)[j];
}

class Bf16LinearBackend final : public Backend {
 public:
  // reported: what device() says. kCuda sends the models down their GPU-only branches too (weights
  // copied into backend buffers, UMT5's staged uploads, the FFN row budget), all of which stay in
  // host memory here: NewBuffer and the copies are the host defaults.
  explicit Bf16LinearBackend(Device reported = Device::kCpu) : reported_(reported) {}
  int bf16_weight_calls = 0, bf16_x_calls = 0, bf16_y_calls = 0;
  int bf16_three_way_calls = 0;  // BF16 GEMMs with three times as many outputs as inputs: a fused q/k/v
  bool misuse = false;           // BF16 x or y with non-BF16 weights, which the CUDA backend refuses

  const char* name() const override { return "bf16-linear-double"; }
  Device device() const override { return reported_; }
  void set_threads(int) override {}
  int threads() const override { return 1; }
  bool LinearAcceptsWeights(DType dtype) const override { return dtype == DType::kF32 || dtype == DType::kBF16; }

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    Linear(x, w, bias, y, false);
  }
  void linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    Linear(x, w, bias, y, true);
  }

  // A BF16 y (rows only bf16 GEMMs read, as the CUDA norms write them): computed in f32, rounded once.
  void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) override {
    bf16_norm_calls += y.dtype == DType::kBF16;
    InPlace(y, [&](Tensor& out) { ref_.layer_norm(x, w, b, eps, out); });
  }
  void layer_norm_modulate(const Tensor& x, const Tensor& sh, const Tensor& sc, float eps, Tensor& y) override {
    bf16_norm_calls += y.dtype == DType::kBF16;
    InPlace(y, [&](Tensor& out) { ref_.layer_norm_modulate(x, sh, sc, eps, out); });
  }
  int bf16_norm_calls = 0;
  // BF16 q/k/v/o (as the CUDA backend takes them): computed in f32 on widened copies, rounded once.
  void rms_norm(Tensor& x, const Tensor& w, float eps) override {
    InPlace(x, [&](Tensor& t) { ref_.rms_norm(t, w, eps); });
  }
  void rms_norm_rope(Tensor& x, const Tensor& w, float eps, const Tensor& c, const Tensor& s, int64_t heads) override {
    InPlace(x, [&](Tensor& t) { ref_.rms_norm_rope(t, w, eps, c, s, heads); });
  }
  int bf16_attention_calls = 0;  // with any of q/k/v/o in BF16
  // The ops the CUDA backend takes in F32 only: a BF16 tensor here is a misuse (it would refuse it).
  void gate_residual(Tensor& x, const Tensor& g, const Tensor& f) override {
    if (F32Only({&x, &g, &f})) ref_.gate_residual(x, g, f);
  }
  void add(Tensor& x, const Tensor& f) override {
    if (F32Only({&x, &f})) ref_.add(x, f);
  }
  void mul(Tensor& x, const Tensor& f) override {
    if (F32Only({&x, &f})) ref_.mul(x, f);
  }
  void sub(Tensor& x, const Tensor& f) override {
    if (F32Only({&x, &f})) ref_.sub(x, f);
  }
  void abs_diff_sums(const Tensor& a, const Tensor& b, Tensor& sums) override {
    if (F32Only({&a, &b, &sums})) ref_.abs_diff_sums(a, b, sums);
  }
  void softmax_relative_bias(Tensor& s, const Tensor& b) override {
    if (F32Only({&s, &b})) ref_.softmax_relative_bias(s, b);
  }
  void gelu_tanh(Tensor& x) override {
    if (F32Only({&x})) ref_.gelu_tanh(x);
  }
  void silu(Tensor& x) override {
    if (F32Only({&x})) ref_.silu(x);
  }
  void rope(Tensor& x, const Tensor& c, const Tensor& s) override {
    if (F32Only({&x, &c, &s})) ref_.rope(x, c, s);
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& o) override {
    if (q.dtype != DType::kBF16 && k.dtype != DType::kBF16 && v.dtype != DType::kBF16 && o.dtype != DType::kBF16) {
      ref_.attention(q, k, v, scale, o);
      return;
    }
    ++bf16_attention_calls;
    std::vector<float> qs, ks, vs;
    const Tensor qf = Widened(q, qs), kf = Widened(k, ks), vf = Widened(v, vs);
    InPlace(o, [&](Tensor& t) { ref_.attention(qf, kf, vf, scale, t); });
  }
  void conv3x3(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    if (F32Only({&x, &w, &b, &y})) ref_.conv3x3(x, w, b, y);
  }
  void upsample_nearest2x(const Tensor& x, Tensor& y) override {
    if (F32Only({&x, &y})) ref_.upsample_nearest2x(x, y);
  }
  void transpose(const Tensor& x, Tensor& y) override {
    if (F32Only({&x, &y})) ref_.transpose(x, y);
  }

 private:
  bool F32Only(std::initializer_list<const Tensor*> tensors) {
    for (const Tensor* t : tensors) {
      if (t->dtype != DType::kF32) misuse = true;
    }
    return !misuse;
  }

  // Calls f(offset in elements, flat index) for every element of a tensor of up to 3 dims.
  template <class F>
  static void ForEach(const Tensor& t, F&& f) {
    const int64_t elem = static_cast<int64_t>(DTypeSize(t.dtype));
    const int64_t d0 = t.ndim > 0 ? t.shape[0] : 1, d1 = t.ndim > 1 ? t.shape[1] : 1, d2 = t.ndim > 2 ? t.shape[2] : 1;
    const int64_t s0 = t.ndim > 0 ? t.strides[0] / elem : 0, s1 = t.ndim > 1 ? t.strides[1] / elem : 0,
                  s2 = t.ndim > 2 ? t.strides[2] / elem : 0;
    int64_t flat = 0;
    for (int64_t i = 0; i < d0; ++i)
      for (int64_t j = 0; j < d1; ++j)
        for (int64_t k = 0; k < d2; ++k) f(i * s0 + j * s1 + k * s2, flat++);
  }
  // A contiguous f32 copy of t (F32 or BF16) in `storage`.
  static Tensor Widened(const Tensor& t, std::vector<float>& storage) {
    storage.resize(static_cast<size_t>(t.numel()));
    ForEach(t, [&](int64_t at, int64_t flat) {
      storage[static_cast<size_t>(flat)] = t.dtype == DType::kBF16
                                               ? BFloat16ToFloat(static_cast<const uint16_t*>(t.data)[at])
                                               : static_cast<const float*>(t.data)[at];
    });
    Tensor w = t;
    w.dtype = DType::kF32;
    w.data = storage.data();
    int64_t stride = 4;
    for (int d = t.ndim - 1; d >= 0; --d) {
      w.strides[d] = stride;
      stride *= t.shape[d];
    }
    return w;
  }
  // f on an f32 copy of x, written back into x (rounded once where x is BF16).
  template <class F>
  static void InPlace(Tensor& x, F&& f) {
    if (x.dtype != DType::kBF16) {
      f(x);
      return;
    }
    std::vector<float> storage;
    Tensor wide = Widened(x, storage);
    f(wide);
    ForEach(x, [&](int64_t at, int64_t flat) {
      static_cast<uint16_t*>(x.data)[at] = FloatToBFloat16(storage[static_cast<size_t>(flat)]);
    });
  }

  void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, bool gelu) {
    if (w.dtype != DType::kBF16) {
      if (x.dtype != DType::kF32 || y.dtype != DType::kF32) {
        misuse = true;
        return;
      }
      ref_.linear(x, w, bias, y);
      if (gelu) ref_.gelu_tanh(y);
      return;
    }
    ++bf16_weight_calls;
    bf16_three_way_calls += w.shape[0] == 3 * w.shape[1];
    bf16_x_calls += x.dtype == DType::kBF16;
    bf16_y_calls += y.dtype == DType::kBF16;
    const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[0];
    std::vector<float> xr(static_cast<size_t>(m * k)), wr(static_cast<size_t>(n * k)), yr(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) xr[i * k + j] = Bf16Rounded(At(x, i, j));
    WidenToF32(w.data, DType::kBF16, wr.data(), 0, wr.size());
    std::vector<float> b;
    if (bias) {
      b.assign(bias->f32(), bias->f32() + n);
      if (y.dtype == DType::kBF16)
        for (float& v : b) v = Bf16Rounded(v);
    }
    const Tensor bt = Tensor::View(b.data(), DType::kF32, {n});
    Tensor yt = Tensor::View(yr.data(), DType::kF32, {m, n});
    ref_.linear(Tensor::View(xr.data(), DType::kF32, {m, k}), Tensor::View(wr.data(), DType::kF32, {n, k}),
                bias ? &bt : nullptr, yt);
    if (gelu) ref_.gelu_tanh(yt);
    for (int64_t i = 0; i < m; ++i) {
      char* row = static_cast<char*>(y.data) + i * y.strides[0];
      for (int64_t j = 0; j < n; ++j) {
        const float v = yr[i * n + j];
        if (y.dtype == DType::kBF16) {
          reinterpret_cast<uint16_t*>(row)[j] = FloatToBFloat16(v);
        } else {
          reinterpret_cast<float*>(row)[j] = v;
        }
      }
    }
  }

  ReferenceBackend ref_;
  Device reported_;
};

}  // namespace ds::wan_test
