// Row addressing shared by the CPU backends. Ops treat a tensor as rows of its contiguous last dim;
// the leading dims may carry any strides, so q/k/v slices of a fused [N, 3, H, dh] buffer, or the
// video half of a [video ‖ text] buffer, are addressed in place without copies.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace ds {

class Rows {
 public:
  explicit Rows(const Tensor& t) : base_(static_cast<char*>(t.data)), lead_(t.ndim - 1) {
    width_ = t.ndim > 0 ? t.shape[t.ndim - 1] : 1;
    for (int i = 0; i < lead_; ++i) {
      shape_[i] = t.shape[i];
      strides_[i] = t.strides[i];
      count_ *= t.shape[i];
    }
    // Leading dims that collapse into one stride (the common case) make row() a multiply.
    uniform_stride_ = UniformRowStride(t);
  }

  int64_t count() const { return count_; }
  int64_t width() const { return width_; }

  float* operator[](int64_t r) const {
    if (uniform_stride_ >= 0) return reinterpret_cast<float*>(base_ + r * uniform_stride_);
    int64_t offset = 0;
    for (int i = lead_ - 1; i >= 0; --i) {
      offset += (r % shape_[i]) * strides_[i];
      r /= shape_[i];
    }
    return reinterpret_cast<float*>(base_ + offset);
  }

 private:
  char* base_;
  int lead_;
  int64_t width_ = 1;
  int64_t count_ = 1;
  int64_t uniform_stride_ = 0;
  int64_t shape_[kMaxDims] = {};
  int64_t strides_[kMaxDims] = {};
};

// Element stride of dim i, for BLAS leading dimensions and head offsets.
inline int64_t FloatStride(const Tensor& t, int i) { return t.strides[i] / static_cast<int64_t>(sizeof(float)); }

}  // namespace ds
