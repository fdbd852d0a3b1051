// Row addressing for the device kernels, the CUDA twin of kernels/cpu/rows.h: an op sees a tensor
// as rows of its contiguous last dim, and the leading dims may carry any byte strides (q/k/v
// slices of a fused qkv buffer, the video half of a [video ‖ text] buffer), so views are used in
// place without copies. Passed to kernels by value.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/cuda/hd.h"

namespace ds::cuda {

struct RowLayout {
  static constexpr int kMaxLead = kMaxDims - 1;

  char* base = nullptr;
  int lead = 0;  // leading dims, all but the last
  int64_t shape[kMaxLead] = {};
  int64_t stride[kMaxLead] = {};  // bytes
  int64_t count = 1;              // rows
  int64_t width = 1;              // floats per row
  int64_t uniform = 0;            // bytes between consecutive rows when constant, else −1

  DS_HD float* Row(int64_t r) const {
    if (uniform >= 0) return reinterpret_cast<float*>(base + r * uniform);
    // A fixed trip count with constant indices keeps the by-value kernel argument out of local
    // memory (a loop to `lead` would index it dynamically).
    int64_t offset = 0;
    DS_UNROLL
    for (int i = kMaxLead - 1; i >= 0; --i) {
      if (i < lead) {
        offset += (r % shape[i]) * stride[i];
        r /= shape[i];
      }
    }
    return reinterpret_cast<float*>(base + offset);
  }
};

inline RowLayout RowsOf(const Tensor& t) {
  RowLayout l;
  l.base = static_cast<char*>(t.data);
  l.lead = t.ndim > 0 ? t.ndim - 1 : 0;
  l.width = t.ndim > 0 ? t.shape[t.ndim - 1] : 1;
  for (int i = 0; i < l.lead; ++i) {
    l.shape[i] = t.shape[i];
    l.stride[i] = t.strides[i];
    l.count *= t.shape[i];
  }
  l.uniform = UniformRowStride(t);
  return l;
}

// Whether p is a multiple of `bytes`, and whether every row of a layout starts on one: what the
// vectorised kernels (float4, bf16 quads) need.
inline bool Aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }
inline bool RowsAligned(const RowLayout& l, int64_t bytes) {
  if (!Aligned(l.base, static_cast<uintptr_t>(bytes))) return false;
  if (l.uniform >= 0) return l.count <= 1 || l.uniform % bytes == 0;
  for (int i = 0; i < l.lead; ++i) {
    if (l.shape[i] > 1 && l.stride[i] % bytes != 0) return false;
  }
  return true;
}

}  // namespace ds::cuda
