#include "core/frame.h"

#include <algorithm>
#include <cmath>

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

// Packed RGB (channels 3) or RGBA (4, alpha 255).
void PlanarToPacked(const float* planar, size_t plane, int channels, uint8_t* out) {
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) out[i * channels + c] = SampleToByte(planar[c * plane + i]);
    if (channels == 4) out[i * 4 + 3] = 255;
  }
}

// Block by block, as the GPU kernel does: the 8-bit samples of each 2×2 block (cut short at an odd
// edge), their luma, and the chroma of their mean.
void PlanarToI420(const float* planar, int width, int height, const FrameLayout& l, uint8_t* out) {
  const size_t plane = static_cast<size_t>(width) * height;
  for (int cy = 0; cy < l.rows[1]; ++cy) {
    for (int cx = 0; cx < l.stride[1]; ++cx) {
      int64_t r = 0, g = 0, b = 0, n = 0;
      for (int y = 2 * cy; y < std::min(2 * cy + 2, height); ++y) {
        for (int x = 2 * cx; x < std::min(2 * cx + 2, width); ++x, ++n) {
          const size_t i = static_cast<size_t>(y) * width + x;
          const int pr = SampleToByte(planar[i]), pg = SampleToByte(planar[plane + i]),
                    pb = SampleToByte(planar[2 * plane + i]);
          out[l.offset[0] + i] = Luma(pr, pg, pb);
          r += pr;
          g += pg;
          b += pb;
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

void PlanarToPixels(const float* planar, int width, int height, PixelFormat format, uint8_t* out) {
  const size_t plane = static_cast<size_t>(width) * height;
  switch (format) {
    case PixelFormat::kRgb:
      PlanarToPacked(planar, plane, 3, out);
      return;
    case PixelFormat::kRgba:
      PlanarToPacked(planar, plane, 4, out);
      return;
    case PixelFormat::kI420:
      PlanarToI420(planar, width, height, LayoutOf(format, width, height), out);
      return;
  }
}

}  // namespace ds
