// The element's plane copy into padded GStreamer rows (the pixel formats themselves are the
// engine's: tests/core/frame_test.cpp, tests/pipelines/test_capi.cpp).
#include <gtest/gtest.h>

#include <vector>

#include "frame_copy.h"

namespace {

TEST(FrameCopy, HonoursBothStridesAndLeavesThePaddingAlone) {
  const int row_bytes = 9, rows = 3, src_stride = 9, dst_stride = 16;  // a 3-pixel RGB plane into padded rows
  std::vector<uint8_t> src(src_stride * rows);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7 + 1);
  std::vector<uint8_t> dst(dst_stride * rows, 0xee);
  ditsrc::CopyPlane(src.data(), src_stride, row_bytes, rows, ditsrc::Plane{dst.data(), dst_stride});
  for (int y = 0; y < rows; ++y) {
    for (int x = 0; x < dst_stride; ++x) {
      const uint8_t want = x < row_bytes ? src[y * src_stride + x] : 0xee;
      EXPECT_EQ(dst[y * dst_stride + x], want) << "row " << y << " byte " << x;
    }
  }
}

TEST(FrameCopy, ReadsRowsApartByTheSourceStride) {
  const uint8_t src[] = {1, 2, 0, 3, 4, 0};  // two rows of two bytes, source stride 3
  uint8_t dst[4] = {};
  ditsrc::CopyPlane(src, 3, 2, 2, ditsrc::Plane{dst, 2});
  EXPECT_EQ(dst[0], 1);
  EXPECT_EQ(dst[1], 2);
  EXPECT_EQ(dst[2], 3);
  EXPECT_EQ(dst[3], 4);
}

}  // namespace
