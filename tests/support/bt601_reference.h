// An independent reference for the engine's I420 frames: BT.601 limited range computed in floating
// point from the RGB8 frame (Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255, Cb and Cr likewise),
// each chroma sample from the mean of its 2×2 block (half blocks at odd edges). The engine's
// integer arithmetic (core/frame) must stay within a level of it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ds::testing {

// rgb: packed, width·3 bytes a row; y, u, v: planes with rows y_stride and c_stride bytes apart.
inline ::testing::AssertionResult I420MatchesBt601(const uint8_t* rgb, int width, int height, const uint8_t* y,
                                                   int y_stride, const uint8_t* u, const uint8_t* v, int c_stride,
                                                   double tolerance = 1.0) {
  auto at = [&](int px, int py, int c) { return static_cast<double>(rgb[(py * width + px) * 3 + c]); };
  for (int py = 0; py < height; ++py) {
    for (int px = 0; px < width; ++px) {
      const double want = 16 + (65.481 * at(px, py, 0) + 128.553 * at(px, py, 1) + 24.966 * at(px, py, 2)) / 255;
      const int got = y[py * y_stride + px];
      if (std::abs(got - want) > tolerance) {
        return ::testing::AssertionFailure() << "Y at " << px << "," << py << " is " << got << ", BT.601 " << want;
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
      const double want_u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255;
      const double want_v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255;
      const int got_u = u[cy * c_stride + cx], got_v = v[cy * c_stride + cx];
      if (std::abs(got_u - want_u) > tolerance || std::abs(got_v - want_v) > tolerance) {
        return ::testing::AssertionFailure() << "U, V at block " << cx << "," << cy << " are " << got_u << ", " << got_v
                                             << ", BT.601 " << want_u << ", " << want_v;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ds::testing
