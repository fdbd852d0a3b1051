// The frame kernels' arithmetic (kernels/cuda/frame.cu) as host-device functions: a sample's byte,
// a packed pixel, and one 4:2:0 block (its luma samples and its chroma pair). The CPU tests
// (tests/cuda/test_frame_math.cpp) run them over whole frames against core/frame.h's
// PlanarToPixels, the host oracle, so "bit for bit the host's bytes" is checked without a GPU.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/frame.h"
#include "kernels/cuda/hd.h"

namespace ds::cuda {

// round(clamp((v + 1)·127.5, 0, 255)), halves away from zero; fmaxf/fminf turn a NaN into 0 before
// the rounding sees it (core's SampleToByte).
DS_HD int SampleByte(float v) { return static_cast<int>(lroundf(fminf(fmaxf((v + 1.0f) * 127.5f, 0.0f), 255.0f))); }

// Pixel i of planar [3, plane] as packed RGB (channels 3) or RGBA (4, alpha 255) at out[i·channels].
DS_HD void PackPixel(const float* planar, int64_t plane, int channels, int64_t i, unsigned char* out) {
  unsigned char* p = out + i * channels;
  for (int c = 0; c < 3; ++c) p[c] = static_cast<unsigned char>(SampleByte(planar[c * plane + i]));
  if (channels == 4) p[3] = 255;
}

DS_HD unsigned char LumaByte(const YuvCoefficients& k, long long r, long long g, long long b) {
  return static_cast<unsigned char>((k.y[0] * r + k.y[1] * g + k.y[2] * b + (16 << 16) + (1 << 15)) >> 16);
}

// Chroma of the mean of n pixels whose channel sums are r, g, b; rounds to nearest (the numerator
// is positive, so integer division is a floor).
DS_HD unsigned char ChromaByte(const int32_t k[3], long long r, long long g, long long b, long long n) {
  const long long scale = n << 16;
  return static_cast<unsigned char>((k[0] * r + k[1] * g + k[2] * b + 128 * scale + scale / 2) / scale);
}

// Chroma block (cx, cy) of a width × height frame (2×2 pixels, cut short at an odd edge): writes
// its luma samples into y_plane (width a row) and its chroma pair at u[(cy·cw + cx)·step], v[…]:
// I420's planes with step 1, NV12's interleaved pairs with v = u + 1 and step 2.
DS_HD void Yuv420Block(const float* planar, int width, int height, int cx, int cy, const YuvCoefficients& k,
                       unsigned char* y_plane, unsigned char* u, unsigned char* v, int step) {
  const int64_t plane = int64_t{width} * height;
  long long r = 0, g = 0, b = 0, n = 0;
  for (int y = 2 * cy; y < 2 * cy + 2 && y < height; ++y) {
    for (int x = 2 * cx; x < 2 * cx + 2 && x < width; ++x, ++n) {
      const int64_t i = int64_t{y} * width + x;
      const int pr = SampleByte(planar[i]), pg = SampleByte(planar[plane + i]), pb = SampleByte(planar[2 * plane + i]);
      y_plane[i] = LumaByte(k, pr, pg, pb);
      r += pr;
      g += pg;
      b += pb;
    }
  }
  const int64_t at = (int64_t{cy} * ((width + 1) / 2) + cx) * step;
  u[at] = ChromaByte(k.u, r, g, b, n);
  v[at] = ChromaByte(k.v, r, g, b, n);
}

}  // namespace ds::cuda
