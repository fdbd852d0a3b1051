// The element's RGB → RGB/RGBA/I420 conversions on known colours, odd sizes and padded strides.
#include <gtest/gtest.h>

#include <vector>

#include "frame_convert.h"

namespace {

using ditsrc::Plane;

struct Yuv {
  int y, u, v;
};

// Converts a w×h image filled with one colour and returns the top-left sample of each plane.
Yuv SolidI420(uint8_t r, uint8_t g, uint8_t b, int w = 4, int h = 2) {
  std::vector<uint8_t> rgb;
  for (int i = 0; i < w * h; ++i) rgb.insert(rgb.end(), {r, g, b});
  const int cw = (w + 1) / 2, ch = (h + 1) / 2;
  std::vector<uint8_t> y(w * h, 0), u(cw * ch, 0), v(cw * ch, 0);
  ditsrc::RgbToI420(rgb.data(), w, h, Plane{y.data(), w}, Plane{u.data(), cw}, Plane{v.data(), cw});
  for (uint8_t s : y) EXPECT_EQ(s, y[0]);
  for (uint8_t s : u) EXPECT_EQ(s, u[0]);
  for (uint8_t s : v) EXPECT_EQ(s, v[0]);
  return {y[0], u[0], v[0]};
}

TEST(FrameConvert, I420UsesBt601LimitedRange) {
  const Yuv black = SolidI420(0, 0, 0), white = SolidI420(255, 255, 255), grey = SolidI420(128, 128, 128);
  EXPECT_EQ(black.y, 16);
  EXPECT_EQ(white.y, 235);
  for (const Yuv& c : {black, white, grey}) {
    EXPECT_EQ(c.u, 128);
    EXPECT_EQ(c.v, 128);
  }
  const Yuv red = SolidI420(255, 0, 0), green = SolidI420(0, 255, 0), blue = SolidI420(0, 0, 255);
  EXPECT_EQ(red.y, 81);  // 16 + 65.481
  EXPECT_EQ(red.u, 90);
  EXPECT_EQ(red.v, 240);
  EXPECT_EQ(green.y, 145);
  EXPECT_EQ(green.u, 54);
  EXPECT_EQ(green.v, 34);
  EXPECT_EQ(blue.y, 41);
  EXPECT_EQ(blue.u, 240);
  EXPECT_EQ(blue.v, 110);
}

TEST(FrameConvert, I420OddSizesAverageThePixelsAtTheEdge) {
  const Yuv red = SolidI420(255, 0, 0, 3, 3);  // the last chroma column and row cover one pixel
  EXPECT_EQ(red.u, 90);
  EXPECT_EQ(red.v, 240);
  // A 1×2 column, black over white: chroma of the mean, (128, 128, 128)-ish grey → neutral.
  const uint8_t rgb[] = {0, 0, 0, 255, 255, 255};
  uint8_t y[2], u[1], v[1];
  ditsrc::RgbToI420(rgb, 1, 2, Plane{y, 1}, Plane{u, 1}, Plane{v, 1});
  EXPECT_EQ(y[0], 16);
  EXPECT_EQ(y[1], 235);
  EXPECT_EQ(u[0], 128);
  EXPECT_EQ(v[0], 128);
}

TEST(FrameConvert, PackedFormatsHonourTheDestinationStride) {
  const int w = 3, h = 2;
  std::vector<uint8_t> rgb(w * h * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 7 + 1);
  const int rgb_stride = 12, rgba_stride = 16;  // padded rows, as a video pool may give
  std::vector<uint8_t> out_rgb(rgb_stride * h, 0xee), out_rgba(rgba_stride * h, 0xee);
  ditsrc::RgbToRgb(rgb.data(), w, h, Plane{out_rgb.data(), rgb_stride});
  ditsrc::RgbToRgba(rgb.data(), w, h, Plane{out_rgba.data(), rgba_stride});
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        const uint8_t want = rgb[(y * w + x) * 3 + c];
        EXPECT_EQ(out_rgb[y * rgb_stride + x * 3 + c], want);
        EXPECT_EQ(out_rgba[y * rgba_stride + x * 4 + c], want);
      }
      EXPECT_EQ(out_rgba[y * rgba_stride + x * 4 + 3], 255);
    }
    EXPECT_EQ(out_rgb[y * rgb_stride + w * 3], 0xee) << "wrote into the row padding";
    EXPECT_EQ(out_rgba[y * rgba_stride + w * 4], 0xee) << "wrote into the row padding";
  }
}

}  // namespace
