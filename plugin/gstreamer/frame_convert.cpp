#include "frame_convert.h"

#include <cstring>

namespace ditsrc {
namespace {

// BT.601 limited-range coefficients scaled by 2^16, rounded so that each chroma row sums to zero:
// grey stays exactly at 128.
constexpr int64_t kYr = 16829, kYg = 33039, kYb = 6416;
constexpr int64_t kUr = -9714, kUg = -19070, kUb = 28784;
constexpr int64_t kVr = 28784, kVg = -24103, kVb = -4681;

uint8_t LumaOf(const uint8_t* p) {
  return static_cast<uint8_t>((kYr * p[0] + kYg * p[1] + kYb * p[2] + (16 << 16) + (1 << 15)) >> 16);
}

// Chroma of the mean of n pixels whose channel sums are r, g, b; rounds to nearest (the numerator
// is positive, so integer division is a floor).
uint8_t ChromaOf(int64_t kr, int64_t kg, int64_t kb, int64_t r, int64_t g, int64_t b, int64_t n) {
  const int64_t scale = n << 16;
  return static_cast<uint8_t>((kr * r + kg * g + kb * b + 128 * scale + scale / 2) / scale);
}

void ChromaRow(const uint8_t* rgb, int width, int height, int cy, uint8_t* u, uint8_t* v) {
  const int rows = (2 * cy + 1 < height) ? 2 : 1;
  for (int cx = 0; 2 * cx < width; ++cx) {
    const int cols = (2 * cx + 1 < width) ? 2 : 1;
    int64_t r = 0, g = 0, b = 0;
    for (int dy = 0; dy < rows; ++dy) {
      const uint8_t* p = rgb + (static_cast<size_t>(2 * cy + dy) * width + 2 * cx) * 3;
      for (int dx = 0; dx < cols; ++dx, p += 3) {
        r += p[0];
        g += p[1];
        b += p[2];
      }
    }
    const int64_t n = rows * cols;
    u[cx] = ChromaOf(kUr, kUg, kUb, r, g, b, n);
    v[cx] = ChromaOf(kVr, kVg, kVb, r, g, b, n);
  }
}

}  // namespace

void RgbToRgb(const uint8_t* rgb, int width, int height, Plane dst) {
  const size_t row = static_cast<size_t>(width) * 3;
  for (int y = 0; y < height; ++y) std::memcpy(dst.data + static_cast<size_t>(y) * dst.stride, rgb + y * row, row);
}

void RgbToRgba(const uint8_t* rgb, int width, int height, Plane dst) {
  for (int y = 0; y < height; ++y) {
    const uint8_t* s = rgb + static_cast<size_t>(y) * width * 3;
    uint8_t* d = dst.data + static_cast<size_t>(y) * dst.stride;
    for (int x = 0; x < width; ++x, s += 3, d += 4) {
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
      d[3] = 255;
    }
  }
}

void RgbToI420(const uint8_t* rgb, int width, int height, Plane y, Plane u, Plane v) {
  for (int row = 0; row < height; ++row) {
    const uint8_t* s = rgb + static_cast<size_t>(row) * width * 3;
    uint8_t* d = y.data + static_cast<size_t>(row) * y.stride;
    for (int x = 0; x < width; ++x, s += 3) d[x] = LumaOf(s);
  }
  for (int cy = 0; 2 * cy < height; ++cy) {
    ChromaRow(rgb, width, height, cy, u.data + static_cast<size_t>(cy) * u.stride,
              v.data + static_cast<size_t>(cy) * v.stride);
  }
}

}  // namespace ditsrc
