// core/frame: the 8-bit frame formats made from planar float RGB, on known colours (BT.601 and
// BT.709 limited-range values worked out by hand), odd sizes and the plane layout. These functions are
// the oracle of every backend's planar_to_pixels.
#include "core/frame.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <limits>
#include <vector>

namespace ds {
namespace {

// Planar [3, h, w] floats whose samples become exactly the bytes r, g, b.
std::vector<float> Solid(uint8_t r, uint8_t g, uint8_t b, int w, int h) {
  std::vector<float> planar(static_cast<size_t>(3) * w * h);
  const uint8_t rgb[3] = {r, g, b};
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < w * h; ++i) planar[static_cast<size_t>(c) * w * h + i] = rgb[c] / 127.5f - 1.0f;
  }
  return planar;
}

struct Yuv {
  int y, u, v;
};

// The I420 frame of a solid w×h image: every sample of a plane must be equal; returns them.
Yuv SolidI420(uint8_t r, uint8_t g, uint8_t b, int w = 4, int h = 2, YuvMatrix matrix = YuvMatrix::kBt601) {
  const FrameLayout l = LayoutOf(PixelFormat::kI420, w, h);
  std::vector<uint8_t> out(l.bytes, 0);
  PlanarToPixels(Solid(r, g, b, w, h).data(), w, h, {PixelFormat::kI420, matrix}, out.data());
  for (int p = 0; p < 3; ++p) {
    for (size_t i = 0; i < static_cast<size_t>(l.stride[p]) * l.rows[p]; ++i) {
      EXPECT_EQ(out[l.offset[p] + i], out[l.offset[p]]) << "plane " << p << " sample " << i;
    }
  }
  return {out[0], out[l.offset[1]], out[l.offset[2]]};
}

TEST(Frame, SamplesRoundAndClamp) {
  EXPECT_EQ(SampleToByte(-1.0f), 0);
  EXPECT_EQ(SampleToByte(1.0f), 255);
  EXPECT_EQ(SampleToByte(0.0f), 128);  // 127.5: halves away from zero
  EXPECT_EQ(SampleToByte(-3.0f), 0);
  EXPECT_EQ(SampleToByte(7.0f), 255);
  EXPECT_EQ(SampleToByte(std::numeric_limits<float>::quiet_NaN()), 0);
  EXPECT_EQ(SampleToByte(std::numeric_limits<float>::infinity()), 255);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(SampleToByte(b / 127.5f - 1.0f), b);
}

// A solid colour and the Y, U, V it must become, worked out by hand.
struct Colour {
  const char* name;
  uint8_t r, g, b;
  Yuv want;
};

void ExpectSolidColours(YuvMatrix m, std::initializer_list<Colour> colours) {
  for (const Colour& c : colours) {
    const Yuv got = SolidI420(c.r, c.g, c.b, 4, 2, m);
    EXPECT_EQ(got.y, c.want.y) << c.name;
    EXPECT_EQ(got.u, c.want.u) << c.name;
    EXPECT_EQ(got.v, c.want.v) << c.name;
  }
}

// Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255, Cb and Cr likewise; grey is neutral.
TEST(Frame, I420UsesBt601LimitedRange) {
  ExpectSolidColours(YuvMatrix::kBt601, {{"black", 0, 0, 0, {16, 128, 128}},
                                         {"white", 255, 255, 255, {235, 128, 128}},
                                         {"grey", 128, 128, 128, {126, 128, 128}},
                                         {"red", 255, 0, 0, {81, 90, 240}},
                                         {"green", 0, 255, 0, {145, 54, 34}},
                                         {"blue", 0, 0, 255, {41, 240, 110}}});
}

// Y = 16 + 219·(0.2126 R + 0.7152 G + 0.0722 B)/255, Cb = 128 + 224·(B − Y')/1.8556/255,
// Cr = 128 + 224·(R − Y')/1.5748/255: red 62.56, 102.33, 240; green 172.63, 41.67, 26.27;
// blue 31.81, 240, 117.73 (the familiar HD colour-bar values); grey 16 + 219·128/255 = 125.93.
TEST(Frame, I420UsesBt709LimitedRangeWhenAsked) {
  ExpectSolidColours(YuvMatrix::kBt709, {{"black", 0, 0, 0, {16, 128, 128}},
                                         {"white", 255, 255, 255, {235, 128, 128}},
                                         {"grey", 128, 128, 128, {126, 128, 128}},
                                         {"red", 255, 0, 0, {63, 102, 240}},
                                         {"green", 0, 255, 0, {173, 42, 26}},
                                         {"blue", 0, 0, 255, {32, 240, 118}}});
}

TEST(Frame, MatrixOnlyChangesI420) {
  const int w = 3, h = 2;
  std::vector<float> planar(3 * w * h);
  for (size_t i = 0; i < planar.size(); ++i) planar[i] = static_cast<float>(i * 37 % 256) / 127.5f - 1.0f;
  for (const PixelFormat p : {PixelFormat::kRgb, PixelFormat::kRgba}) {
    std::vector<uint8_t> a(LayoutOf(p, w, h).bytes), b(a.size());
    PlanarToPixels(planar.data(), w, h, {p, YuvMatrix::kBt601}, a.data());
    PlanarToPixels(planar.data(), w, h, {p, YuvMatrix::kBt709}, b.data());
    EXPECT_EQ(a, b) << PixelFormatName(p);
  }
}

TEST(Frame, I420ChromaAveragesTheBlockAndCutsItShortAtOddEdges) {
  const Yuv red = SolidI420(255, 0, 0, 3, 3);  // the last chroma column and row cover one pixel
  EXPECT_EQ(red.u, 90);
  EXPECT_EQ(red.v, 240);
  // A 1×2 column, black over white: the chroma of their mean, grey, is neutral.
  const float planar[] = {-1, 1, -1, 1, -1, 1};
  const FrameLayout l = LayoutOf(PixelFormat::kI420, 1, 2);
  ASSERT_EQ(l.bytes, 4u);
  uint8_t out[4];
  PlanarToPixels(planar, 1, 2, {PixelFormat::kI420}, out);
  EXPECT_EQ(out[0], 16);
  EXPECT_EQ(out[1], 235);
  EXPECT_EQ(out[2], 128);
  EXPECT_EQ(out[3], 128);
}

// NV12 holds I420's samples: the same Y plane, then each block's U and V side by side.
TEST(Frame, Nv12InterleavesI420sChroma) {
  for (const auto& [w, h] : {std::pair{6, 4}, std::pair{5, 3}, std::pair{1, 1}}) {
    std::vector<float> planar(static_cast<size_t>(3) * w * h);
    for (size_t i = 0; i < planar.size(); ++i) planar[i] = static_cast<float>(i * 53 % 256) / 127.5f - 1.0f;
    for (const YuvMatrix m : {YuvMatrix::kBt601, YuvMatrix::kBt709}) {
      const FrameLayout li = LayoutOf(PixelFormat::kI420, w, h), ln = LayoutOf(PixelFormat::kNv12, w, h);
      std::vector<uint8_t> i420(li.bytes), nv12(ln.bytes);
      PlanarToPixels(planar.data(), w, h, {PixelFormat::kI420, m}, i420.data());
      PlanarToPixels(planar.data(), w, h, {PixelFormat::kNv12, m}, nv12.data());
      ASSERT_EQ(ln.bytes, li.bytes);
      for (int i = 0; i < w * h; ++i) EXPECT_EQ(nv12[i], i420[i]) << "Y " << i;
      for (size_t k = 0; k < static_cast<size_t>(li.stride[1]) * li.rows[1]; ++k) {
        EXPECT_EQ(nv12[ln.offset[1] + 2 * k], i420[li.offset[1] + k]) << "U " << k;
        EXPECT_EQ(nv12[ln.offset[1] + 2 * k + 1], i420[li.offset[2] + k]) << "V " << k;
      }
    }
  }
}

TEST(Frame, LayoutPacksThePlanes) {
  const FrameLayout i420 = LayoutOf(PixelFormat::kI420, 5, 3);
  EXPECT_EQ(i420.planes, 3);
  EXPECT_EQ(i420.stride[0], 5);
  EXPECT_EQ(i420.stride[1], 3);
  EXPECT_EQ(i420.rows[1], 2);
  EXPECT_EQ(i420.offset[1], 15u);
  EXPECT_EQ(i420.offset[2], 21u);
  EXPECT_EQ(i420.bytes, 27u);
  EXPECT_EQ(i420.u, 15u);
  EXPECT_EQ(i420.v, 21u);
  EXPECT_EQ(i420.chroma_step, 1);
  const FrameLayout rgba = LayoutOf(PixelFormat::kRgba, 5, 3);
  EXPECT_EQ(rgba.planes, 1);
  EXPECT_EQ(rgba.stride[0], 20);
  EXPECT_EQ(rgba.bytes, 60u);
  EXPECT_EQ(LayoutOf(PixelFormat::kRgb, 5, 3).bytes, 45u);
  const FrameLayout nv12 = LayoutOf(PixelFormat::kNv12, 5, 3);
  EXPECT_EQ(nv12.planes, 2);
  EXPECT_EQ(nv12.stride[0], 5);
  EXPECT_EQ(nv12.stride[1], 6);
  EXPECT_EQ(nv12.rows[1], 2);
  EXPECT_EQ(nv12.offset[1], 15u);
  EXPECT_EQ(nv12.bytes, 27u);
  EXPECT_EQ(nv12.u, 15u);
  EXPECT_EQ(nv12.v, 16u);
  EXPECT_EQ(nv12.chroma_step, 2);
  EXPECT_EQ(LayoutOf(PixelFormat::kRgb, 5, 3).chroma_step, 0);
}

TEST(Frame, PackedFormatsInterleaveTheChannels) {
  const int w = 3, h = 2;
  std::vector<float> planar(3 * w * h);
  for (size_t i = 0; i < planar.size(); ++i) planar[i] = static_cast<float>(i * 11 % 256) / 127.5f - 1.0f;
  std::vector<uint8_t> rgb(LayoutOf(PixelFormat::kRgb, w, h).bytes), rgba(LayoutOf(PixelFormat::kRgba, w, h).bytes);
  PlanarToPixels(planar.data(), w, h, {PixelFormat::kRgb}, rgb.data());
  PlanarToPixels(planar.data(), w, h, {PixelFormat::kRgba}, rgba.data());
  for (int i = 0; i < w * h; ++i) {
    for (int c = 0; c < 3; ++c) {
      const int want = static_cast<int>((c * w * h + i) * 11 % 256);
      EXPECT_EQ(rgb[i * 3 + c], want);
      EXPECT_EQ(rgba[i * 4 + c], want);
    }
    EXPECT_EQ(rgba[i * 4 + 3], 255);
  }
}

}  // namespace
}  // namespace ds
