// Small building blocks shared by the model stages: a linear layer's tensors and a reader that
// loads a stage's weights with shape checks, keeping the first error so loaders read like the
// architecture they load.
#pragma once

#include <string>
#include <vector>

#include "core/backend.h"
#include "core/status.h"
#include "core/tensor.h"

namespace ds {

class Weights;

struct Linear {
  Tensor w;  // [out, in]
  Tensor b;  // [out], or data == nullptr for no bias
  int64_t in() const { return w.shape[1]; }
  int64_t out() const { return w.shape[0]; }
  // y[M, out] = x[M, in]·wᵀ + b
  void operator()(Backend& be, const Tensor& x, Tensor& y) const {
    be.linear(x, w, b.data != nullptr ? &b : nullptr, y);
  }
  // y = gelu_tanh(x·wᵀ + b), one Backend op (a GPU fuses the activation into the GEMM)
  void GeluTanh(Backend& be, const Tensor& x, Tensor& y) const {
    be.linear_gelu_tanh(x, w, b.data != nullptr ? &b : nullptr, y);
  }
  // residual += gate · (x·wᵀ + b) (gate null: without it), one Backend op; scratch [M, out] F32.
  void AddTo(Backend& be, const Tensor& x, const Tensor* gate, Tensor& residual, Tensor& scratch) const {
    be.linear_residual(x, w, b.data != nullptr ? &b : nullptr, gate, residual, scratch);
  }
};

class WeightReader {
 public:
  explicit WeightReader(Weights& weights) : weights_(weights) {}

  Tensor tensor(const std::string& name, std::vector<int64_t> shape);
  Linear linear(const std::string& name, int64_t out, int64_t in, bool bias = true);
  const Status& status() const { return status_; }

 private:
  Weights& weights_;
  Status status_;
};

// A row range [first, first + rows) of a 2-D tensor, as a tensor of its own.
inline Tensor Rows(const Tensor& t, int64_t first, int64_t rows) {
  Tensor r = t;
  r.shape[0] = rows;
  r.data = static_cast<char*>(t.data) + first * t.strides[0];
  return r;
}

// A contiguous [rows, cols] float view.
inline Tensor Mat(float* data, int64_t rows, int64_t cols) { return Tensor::View(data, DType::kF32, {rows, cols}); }

// Row r of a [rows, cols] tensor as a [cols] vector.
inline Tensor Row(const Tensor& t, int64_t r) {
  return Tensor::View(static_cast<char*>(t.data) + r * t.strides[0], DType::kF32, {t.shape[1]}, t.device);
}

// Columns [first, first + cols) of a 2-D tensor: a view with the same rows and row stride.
inline Tensor Cols(const Tensor& t, int64_t first, int64_t cols) {
  Tensor c = t;
  c.shape[1] = cols;
  c.data = static_cast<char*>(t.data) + first * t.strides[1];
  return c;
}

// A [cols] slice of a vector starting at column `first`.
inline Tensor Slice(const Tensor& v, int64_t first, int64_t cols) {
  return Tensor::View(static_cast<float*>(v.data) + first, DType::kF32, {cols}, v.device);
}

}  // namespace ds
