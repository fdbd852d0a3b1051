// An independent reference for the engine's I420 frames: limited range computed in floating point
// from the RGB8 frame and a standard's luma weights Kr, Kb (Y = 16 + 219·(Kr R + Kg G + Kb B)/255,
// Cb = 128 + 224·(B − Y')/(2(1 − Kb))/255, Cr = 128 + 224·(R − Y')/(2(1 − Kr))/255; BT.601 gives the
// familiar 65.481 R + 128.553 G + 24.966 B), each chroma sample from the mean of its 2×2 block
// (half blocks at odd edges). The engine's integer arithmetic (core/frame) must stay within a level
// of it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ds::testing {

struct YuvStandard {
  const char* name;
  double kr, kb;
};
inline constexpr YuvStandard kBt601{"BT.601", 0.299, 0.114};
inline constexpr YuvStandard kBt709{"BT.709", 0.2126, 0.0722};

// rgb: packed, width·3 bytes a row; y, u, v: planes with rows y_stride and c_stride bytes apart.
inline ::testing::AssertionResult I420Matches(const YuvStandard& standard, const uint8_t* rgb, int width, int height,
                                              const uint8_t* y, int y_stride, const uint8_t* u, const uint8_t* v,
                                              int c_stride, double tolerance = 1.0) {
  const double kr = standard.kr, kb = standard.kb, kg = 1 - kr - kb;
  auto luma = [&](double r, double g, double b) { return kr * r + kg * g + kb * b; };
  auto at = [&](int px, int py, int c) { return static_cast<double>(rgb[(py * width + px) * 3 + c]); };
  for (int py = 0; py < height; ++py) {
    for (int px = 0; px < width; ++px) {
      const double want = 16 + 219 * luma(at(px, py, 0), at(px, py, 1), at(px, py, 2)) / 255;
      const int got = y[py * y_stride + px];
      if (std::abs(got - want) > tolerance) {
        return ::testing::AssertionFailure()
               << "Y at " << px << "," << py << " is " << got << ", " << standard.name << " " << want;
      }
    }
  }
  for (int cy = 0; 2 * cy < height; ++cy) {
    for (int cx = 0; 2 * cx < width; ++cx) {
      double r = 0, g = 0, b = 0, n = 0;
      for (int py = 2 * cy; py < std::min(2 * cy + 2, height); ++py) {
        for (int px = 2 * cx; px < std::min(2 * cx + 2, width); ++px, ++n) {
          r += at(px, py, 0);
          g += at(px, py, 1);
          b += at(px, py, 2);
        }
      }
      r /= n;
      g /= n;
      b /= n;
      const double want_u = 128 + 224 * (b - luma(r, g, b)) / (2 * (1 - kb)) / 255;
      const double want_v = 128 + 224 * (r - luma(r, g, b)) / (2 * (1 - kr)) / 255;
      const int got_u = u[cy * c_stride + cx], got_v = v[cy * c_stride + cx];
      if (std::abs(got_u - want_u) > tolerance || std::abs(got_v - want_v) > tolerance) {
        return ::testing::AssertionFailure() << "U, V at block " << cx << "," << cy << " are " << got_u << ", " << got_v
                                             << ", " << standard.name << " " << want_u << ", " << want_v;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ds::testing
