// Tensor: a plain view (dtype, shape, byte strides, data, device). Storage is owned elsewhere:
// by a Buffer from a Backend, or by a memory-mapped file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

namespace ds {

enum class DType : uint8_t { kF32, kF16, kBF16 };
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
  static Tensor View(void* data, DType dtype, std::initializer_list<int64_t> shape,
                     Device device = Device::kCpu);
};

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

// IEEE half and bfloat16 conversions used when loading weights.
float HalfToFloat(uint16_t h);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToHalf(float f);
uint16_t FloatToBFloat16(float f);
// dst[i] = float(src[i]) for i in [begin, end): src holds F32, F16 or BF16 values at any byte
// alignment (checkpoint data), dst float32.
void WidenToF32(const void* src, DType dtype, float* dst, size_t begin, size_t end);

}  // namespace ds
