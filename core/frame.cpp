#include "core/frame.h"

#include <algorithm>
#include <cmath>

namespace ds {
namespace {

// x·2^16 rounded to nearest, halves away from zero.
constexpr int32_t Scaled(double x) {
  return x >= 0 ? static_cast<int32_t>(x * 65536 + 0.5) : -static_cast<int32_t>(-x * 65536 + 0.5);
}

// Limited range from the luma weights kr and kb: Y = 16 + 219/255·(kr·R + kg·G + kb·B),
// Cb = 128 + 224/255·(B − Y')/(2(1 − kb)), Cr = 128 + 224/255·(R − Y')/(2(1 − kr)).
constexpr YuvCoefficients LimitedRange(double kr, double kb) {
  const double kg = 1 - kr - kb, luma = 219.0 / 255, chroma = 224.0 / 255;
  YuvCoefficients c{};
  c.y[0] = Scaled(kr * luma);
  c.y[1] = Scaled(kg * luma);
  c.y[2] = Scaled(kb * luma);
  c.u[0] = Scaled(-kr / (2 * (1 - kb)) * chroma);
  c.u[2] = Scaled(chroma / 2);
  c.u[1] = -c.u[0] - c.u[2];
  c.v[0] = Scaled(chroma / 2);
  c.v[2] = Scaled(-kb / (2 * (1 - kr)) * chroma);
  c.v[1] = -c.v[0] - c.v[2];
  return c;
}

constexpr YuvCoefficients kBt601 = LimitedRange(0.299, 0.114);
constexpr YuvCoefficients kBt709 = LimitedRange(0.2126, 0.0722);
// The integer BT.601 table as commonly published (e.g. 16829 = 65.481/255·2^16 for R's luma).
static_assert(kBt601.y[0] == 16829 && kBt601.y[1] == 33039 && kBt601.y[2] == 6416);
static_assert(kBt601.u[0] == -9714 && kBt601.u[1] == -19070 && kBt601.u[2] == 28784);
static_assert(kBt601.v[0] == 28784 && kBt601.v[1] == -24103 && kBt601.v[2] == -4681);
// White reaches exactly 235 in both (the luma row sums to 219/255·2^16, rounded).
static_assert(kBt601.y[0] + kBt601.y[1] + kBt601.y[2] == 56284 && kBt709.y[0] + kBt709.y[1] + kBt709.y[2] == 56284);

uint8_t Luma(const YuvCoefficients& c, int64_t r, int64_t g, int64_t b) {
  return static_cast<uint8_t>((c.y[0] * r + c.y[1] * g + c.y[2] * b + (16 << 16) + (1 << 15)) >> 16);
}

// Chroma of the mean of n pixels whose channel sums are r, g, b; rounds to nearest (the numerator
// is positive, so integer division is a floor).
uint8_t Chroma(const int32_t k[3], int64_t r, int64_t g, int64_t b, int64_t n) {
  const int64_t scale = n << 16;
  return static_cast<uint8_t>((k[0] * r + k[1] * g + k[2] * b + 128 * scale + scale / 2) / scale);
}

// Packed RGB (channels 3) or RGBA (4, alpha 255).
void PlanarToPacked(const float* planar, size_t plane, int channels, uint8_t* out) {
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) out[i * channels + c] = SampleToByte(planar[c * plane + i]);
    if (channels == 4) out[i * 4 + 3] = 255;
  }
}

// Block by block, as the GPU kernel does: the 8-bit samples of each 2×2 block (cut short at an odd
// edge), their luma, and the chroma of their mean. Chroma block k's U sample goes to u[k·step] and
// its V to v[k·step] (FrameLayout's u, v and chroma_step).
void PlanarToYuv420(const float* planar, int width, int height, const YuvCoefficients& c, uint8_t* y_plane, uint8_t* u,
                    uint8_t* v, int step) {
  const size_t plane = static_cast<size_t>(width) * height;
  const int cw = (width + 1) / 2, ch = (height + 1) / 2;
  for (int cy = 0; cy < ch; ++cy) {
    for (int cx = 0; cx < cw; ++cx) {
      int64_t r = 0, g = 0, b = 0, n = 0;
      for (int y = 2 * cy; y < std::min(2 * cy + 2, height); ++y) {
        for (int x = 2 * cx; x < std::min(2 * cx + 2, width); ++x, ++n) {
          const size_t i = static_cast<size_t>(y) * width + x;
          const int pr = SampleToByte(planar[i]), pg = SampleToByte(planar[plane + i]),
                    pb = SampleToByte(planar[2 * plane + i]);
          y_plane[i] = Luma(c, pr, pg, pb);
          r += pr;
          g += pg;
          b += pb;
        }
      }
      const size_t at = (static_cast<size_t>(cy) * cw + cx) * step;
      u[at] = Chroma(c.u, r, g, b, n);
      v[at] = Chroma(c.v, r, g, b, n);
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
    case PixelFormat::kNv12:
      return "NV12";
  }
  return "?";
}

bool IsYuv420(PixelFormat format) { return format == PixelFormat::kI420 || format == PixelFormat::kNv12; }

const char* YuvMatrixName(YuvMatrix matrix) { return matrix == YuvMatrix::kBt709 ? "BT.709" : "BT.601"; }

YuvCoefficients CoefficientsOf(YuvMatrix matrix) { return matrix == YuvMatrix::kBt709 ? kBt709 : kBt601; }

FrameLayout LayoutOf(PixelFormat format, int width, int height) {
  FrameLayout l;
  if (format == PixelFormat::kNv12) {
    const int cw = (width + 1) / 2, ch = (height + 1) / 2;
    l.planes = 2;
    l.stride[0] = width;
    l.rows[0] = height;
    l.stride[1] = 2 * cw;
    l.rows[1] = ch;
    l.offset[1] = static_cast<size_t>(width) * height;
    l.bytes = l.offset[1] + static_cast<size_t>(2 * cw) * ch;
    l.u = l.offset[1];
    l.v = l.offset[1] + 1;
    l.chroma_step = 2;
    return l;
  }
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
    l.u = l.offset[1];
    l.v = l.offset[2];
    l.chroma_step = 1;
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

void PlanarToPixels(const float* planar, int width, int height, FrameFormat format, uint8_t* out) {
  const size_t plane = static_cast<size_t>(width) * height;
  switch (format.pixels) {
    case PixelFormat::kRgb:
      PlanarToPacked(planar, plane, 3, out);
      return;
    case PixelFormat::kRgba:
      PlanarToPacked(planar, plane, 4, out);
      return;
    case PixelFormat::kI420:
    case PixelFormat::kNv12: {
      const FrameLayout l = LayoutOf(format.pixels, width, height);
      PlanarToYuv420(planar, width, height, CoefficientsOf(format.matrix), out, out + l.u, out + l.v, l.chroma_step);
      return;
    }
  }
}

}  // namespace ds
