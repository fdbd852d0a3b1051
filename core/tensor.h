// Tensor: a plain view (dtype, shape, byte strides, data, device). Storage is owned elsewhere:
// by a Buffer from a Backend, or by a memory-mapped file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>

namespace ds {

// F8 types only as stored weights (widened to float32 or bf16 before use): OCP E4M3 ("fn": no
// infinities) and E5M2, as ComfyUI's fp8 checkpoints carry them. U8 only as video frames' bytes.
enum class DType : uint8_t { kF32, kF16, kBF16, kF8E4M3, kF8E5M2, kU8 };
enum class Device : uint8_t { kCpu, kCuda };

size_t DTypeSize(DType t);
const char* DTypeName(DType t);

constexpr int kMaxDims = 5;

struct Tensor {
  DType dtype = DType::kF32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // in bytes; contiguous: strides[i] = strides[i+1]·shape[i+1]
  void* data = nullptr;
  Device device = Device::kCpu;

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
  bool contiguous() const;
  std::string shape_string() const;  // "[9, 16, 8, 8]"

  float* f32() const { return static_cast<float*>(data); }
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }

  // A contiguous view of `data` with the given shape.
  static Tensor View(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device = Device::kCpu);
};

// Bytes from the first to one past the last element of a view (strides ≥ 0, as all views here):
// the memory it touches.
size_t SpanBytes(const Tensor& t);

// Bytes between consecutive rows (of the last dim) when the leading dims collapse into one
// stride, else −1: what lets a row be found by one multiply. Dims of size 1 are skipped (their
// stride is never stepped), so [a, 1, b, d] with a stride on the 1 that matches nothing is judged
// by a and b alone. Without a leading dim of more than one row: the innermost leading dim's
// stride (0 for a vector).
inline int64_t UniformRowStride(const Tensor& t) {
  int64_t uniform = t.ndim > 1 ? t.strides[t.ndim - 2] : 0, next = 0;
  bool inner = true;
  for (int i = t.ndim - 2; i >= 0; --i) {
    if (t.shape[i] == 1) continue;
    if (inner) {
      uniform = t.strides[i];
      inner = false;
    } else if (t.strides[i] != next) {
      return -1;
    }
    next = t.strides[i] * t.shape[i];
  }
  return uniform;
}

// Rows [N, H·dh] (rows possibly strided, elements contiguous) as heads [N, H, dh]: the view q/k/v
// take for rope and attention. `heads` must divide the width.
Tensor SplitHeads(const Tensor& rows, int64_t heads);

// Owning, 64-byte aligned host storage for float tensors.
class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(size_t count);
  float* data() const { return data_.get(); }
  size_t size() const { return size_; }
  Tensor view(std::initializer_list<int64_t> shape) const;

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float, Free> data_;
  size_t size_ = 0;
};

// IEEE half, bfloat16 and 8-bit float conversions used when loading weights.
float HalfToFloat(uint16_t h);
// Inline: weight loading converts billions of them (a loop over these vectorises).
inline float BFloat16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
float Fp8E4M3ToFloat(uint8_t b);  // bias 7; S.1111.111 is NaN, no infinities; max 448
float Fp8E5M2ToFloat(uint8_t b);  // the upper byte of an IEEE half
uint16_t FloatToHalf(float f);
inline uint16_t FloatToBFloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);                                                       // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}
// dst[i] = float(src[i]) · scale for i in [begin, end): src holds values of any DType at any byte
// alignment (checkpoint data), dst float32; scale is the per-tensor factor of a scaled-F8 weight (1
// otherwise, which changes nothing).
void WidenToF32(const void* src, DType dtype, float* dst, size_t begin, size_t end, float scale = 1.0f);

}  // namespace ds
