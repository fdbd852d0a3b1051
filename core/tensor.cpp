#include "core/tensor.h"

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include <fmt/format.h>

namespace ds {

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kF16:
      return 2;
    case DType::kBF16:
      return 2;
    case DType::kF8E4M3:
    case DType::kF8E5M2:
    case DType::kU8:
      return 1;
  }
  return 0;
}

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kF8E4M3:
      return "F8_E4M3";
    case DType::kF8E5M2:
      return "F8_E5M2";
    case DType::kU8:
      return "U8";
  }
  return "?";
}

size_t SpanBytes(const Tensor& t) {
  if (t.numel() == 0) return 0;
  int64_t last = 0;
  for (int i = 0; i < t.ndim; ++i) last += (t.shape[i] - 1) * t.strides[i];
  return static_cast<size_t>(last) + DTypeSize(t.dtype);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool Tensor::contiguous() const {
  int64_t expect = static_cast<int64_t>(DTypeSize(dtype));
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expect) return false;
    expect *= shape[i];
  }
  return true;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + "]";
}

Tensor Tensor::View(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device) {
  Tensor t;
  t.dtype = dtype;
  t.data = data;
  t.device = device;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) t.shape[i++] = d;
  int64_t stride = static_cast<int64_t>(DTypeSize(dtype));
  for (int j = t.ndim - 1; j >= 0; --j) {
    t.strides[j] = stride;
    stride *= t.shape[j];
  }
  return t;
}

HostBuffer::HostBuffer(size_t count) : size_(count) {
  size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  data_.reset(static_cast<float*>(p));
}

void HostBuffer::Free::operator()(float* p) const { std::free(p); }

Tensor SplitHeads(const Tensor& rows, int64_t heads) {
  Tensor h = rows;
  h.ndim = 3;
  h.shape[1] = heads;
  h.shape[2] = rows.shape[1] / heads;
  h.strides[2] = rows.strides[1];
  h.strides[1] = rows.strides[1] * h.shape[2];
  return h;
}

Tensor HostBuffer::view(std::initializer_list<int64_t> shape) const {
  return Tensor::View(data_.get(), DType::kF32, shape);
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// v >> shift, rounded to nearest, ties to even. Integer-only, so the result does not depend on the
// floating-point environment of a host process.
static uint32_t ShiftRoundEven(uint32_t v, uint32_t shift) {
  uint32_t q = v >> shift;
  uint32_t rest = v & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1u);
  return q + (rest > half || (rest == half && (q & 1u)) ? 1u : 0u);
}

uint16_t FloatToHalf(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t absbits = bits & 0x7fffffffu;
  if (absbits > 0x7f800000u) return sign | 0x7e00u;
  if (absbits >= 0x477ff000u) return sign | 0x7c00u;  // overflow → inf
  uint32_t exp = absbits >> 23;
  if (exp < 102) return sign;  // below 2^-25, at most half the smallest subnormal: rounds to zero
  if (exp < 113) {             // half subnormal: value / 2^-24 = mant · 2^(exp − 126)
    uint32_t mant = (absbits & 0x7fffffu) | 0x800000u;
    return sign | static_cast<uint16_t>(ShiftRoundEven(mant, 126 - exp));
  }
  // Rebias the exponent in place; a rounding carry out of the mantissa correctly bumps it.
  return sign | static_cast<uint16_t>(ShiftRoundEven(absbits - ((127u - 15u) << 23), 13));
}

float Fp8E4M3ToFloat(uint8_t b) {
  const int exp = (b >> 3) & 0xf, mant = b & 7;
  float v;
  if (exp == 15 && mant == 7) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -9);  // subnormal: mant/8 · 2^−6
  } else {
    v = std::ldexp(static_cast<float>(8 + mant), exp - 10);  // (1 + mant/8) · 2^(exp − 7)
  }
  return (b & 0x80) ? -v : v;
}

float Fp8E5M2ToFloat(uint8_t b) { return HalfToFloat(static_cast<uint16_t>(b << 8)); }

void WidenToF32(const void* src, DType dtype, float* dst, size_t begin, size_t end, float scale) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst + begin, bytes + 4 * begin, (end - begin) * sizeof(float));
      if (scale != 1.0f) {
        for (size_t i = begin; i < end; ++i) dst[i] *= scale;
      }
      return;
    case DType::kBF16:
      for (size_t i = begin; i < end; ++i) {
        uint16_t v;
        std::memcpy(&v, bytes + 2 * i, 2);
        dst[i] = BFloat16ToFloat(v) * scale;
      }
      return;
    case DType::kF16:
      for (size_t i = begin; i < end; ++i) {
        uint16_t v;
        std::memcpy(&v, bytes + 2 * i, 2);
        dst[i] = HalfToFloat(v) * scale;
      }
      return;
    case DType::kF8E4M3:
    case DType::kF8E5M2: {
      // 256 values: a table beats decoding each byte.
      static const auto table = [](bool e4m3) {
        std::array<float, 256> t{};
        for (int b = 0; b < 256; ++b) {
          t[b] = e4m3 ? Fp8E4M3ToFloat(static_cast<uint8_t>(b)) : Fp8E5M2ToFloat(static_cast<uint8_t>(b));
        }
        return t;
      };
      static const std::array<float, 256> e4m3 = table(true), e5m2 = table(false);
      const std::array<float, 256>& t = dtype == DType::kF8E4M3 ? e4m3 : e5m2;
      for (size_t i = begin; i < end; ++i) dst[i] = t[bytes[i]] * scale;
      return;
    }
    case DType::kU8:
      for (size_t i = begin; i < end; ++i) dst[i] = static_cast<float>(bytes[i]) * scale;
      return;
  }
}

}  // namespace ds
