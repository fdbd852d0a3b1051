#include "core/frame.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace ds {
namespace {

using namespace bt601;

uint8_t Luma(int64_t r, int64_t g, int64_t b) {
  return static_cast<uint8_t>((kYr * r + kYg * g + kYb * b + (16 << 16) + (1 << 15)) >> 16);
}

// Chroma of the mean of n pixels whose channel sums are r, g, b; rounds to nearest (the numerator
// is positive, so integer division is a floor).
uint8_t Chroma(int64_t kr, int64_t kg, int64_t kb, int64_t r, int64_t g, int64_t b, int64_t n) {
  const int64_t scale = n << 16;
  return static_cast<uint8_t>((kr * r + kg * g + kb * b + 128 * scale + scale / 2) / scale);
}

void Rgb8ToI420(const uint8_t* rgb, int width, int height, const FrameLayout& l, uint8_t* out) {
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = rgb + (static_cast<size_t>(y) * width + x) * 3;
      out[l.offset[0] + static_cast<size_t>(y) * l.stride[0] + x] = Luma(p[0], p[1], p[2]);
    }
  }
  for (int cy = 0; cy < l.rows[1]; ++cy) {
    for (int cx = 0; cx < l.stride[1]; ++cx) {
      int64_t r = 0, g = 0, b = 0, n = 0;
      for (int y = 2 * cy; y < std::min(2 * cy + 2, height); ++y) {
        for (int x = 2 * cx; x < std::min(2 * cx + 2, width); ++x, ++n) {
          const uint8_t* p = rgb + (static_cast<size_t>(y) * width + x) * 3;
          r += p[0];
          g += p[1];
          b += p[2];
        }
      }
      const size_t at = static_cast<size_t>(cy) * l.stride[1] + cx;
      out[l.offset[1] + at] = Chroma(kUr, kUg, kUb, r, g, b, n);
      out[l.offset[2] + at] = Chroma(kVr, kVg, kVb, r, g, b, n);
    }
  }
}

}  // namespace

const char* PixelFormatName(PixelFormat format) {
  switch (format) {
    case PixelFormat::kRgb:
      return "RGB";
    case PixelFormat::kRgba:
      return "RGBA";
    case PixelFormat::kI420:
      return "I420";
  }
  return "?";
}

FrameLayout LayoutOf(PixelFormat format, int width, int height) {
  FrameLayout l;
  if (format == PixelFormat::kI420) {
    const int cw = (width + 1) / 2, ch = (height + 1) / 2;
    l.planes = 3;
    l.stride[0] = width;
    l.rows[0] = height;
    l.stride[1] = l.stride[2] = cw;
    l.rows[1] = l.rows[2] = ch;
    l.offset[1] = static_cast<size_t>(width) * height;
    l.offset[2] = l.offset[1] + static_cast<size_t>(cw) * ch;
    l.bytes = l.offset[2] + static_cast<size_t>(cw) * ch;
    return l;
  }
  l.planes = 1;
  l.stride[0] = width * (format == PixelFormat::kRgba ? 4 : 3);
  l.rows[0] = height;
  l.bytes = static_cast<size_t>(l.stride[0]) * height;
  return l;
}

// fmax/fmin rather than std::clamp: a NaN sample becomes 0 by their definition (as on the GPU),
// not by whatever lround makes of a NaN.
uint8_t SampleToByte(float v) {
  return static_cast<uint8_t>(std::lround(std::fmin(std::fmax((v + 1.0f) * 127.5f, 0.0f), 255.0f)));
}

void PlanarToRgb8(const float* planar, int width, int height, uint8_t* rgb) {
  const size_t plane = static_cast<size_t>(width) * height;
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) rgb[i * 3 + c] = SampleToByte(planar[c * plane + i]);
  }
}

void PlanarToPixels(const float* planar, int width, int height, PixelFormat format, uint8_t* out) {
  const size_t plane = static_cast<size_t>(width) * height;
  switch (format) {
    case PixelFormat::kRgb:
      PlanarToRgb8(planar, width, height, out);
      return;
    case PixelFormat::kRgba:
      for (size_t i = 0; i < plane; ++i) {
        for (int c = 0; c < 3; ++c) out[i * 4 + c] = SampleToByte(planar[c * plane + i]);
        out[i * 4 + 3] = 255;
      }
      return;
    case PixelFormat::kI420: {
      std::vector<uint8_t> rgb(plane * 3);
      PlanarToRgb8(planar, width, height, rgb.data());
      Rgb8ToI420(rgb.data(), width, height, LayoutOf(format, width, height), out);
      return;
    }
  }
}

}  // namespace ds
