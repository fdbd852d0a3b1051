// The frame kernels' arithmetic (kernels/cuda/frame_math.h) against core/frame.h, the host oracle:
// whole frames made block by block and pixel by pixel as the kernels make them must equal
// PlanarToPixels' bytes exactly, for every format and matrix, at even and odd sizes, with samples
// outside [−1, 1], NaN and infinities.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/frame.h"
#include "kernels/cuda/frame_math.h"

namespace ds {
namespace {

std::vector<float> RandomPlanar(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.2f, 1.2f);
  std::vector<float> planar(static_cast<size_t>(3) * w * h);
  for (float& v : planar) v = u(rng);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), kInf, -kInf, -1.0f, 1.0f, 0.0f};
  for (size_t i = 0; i < planar.size(); i += 7) planar[i] = specials[(i / 7) % 6];
  return planar;
}

// The frame as the kernels make it: one Yuv420Block per chroma block, or one PackPixel per pixel.
std::vector<uint8_t> KernelFrame(const std::vector<float>& planar, int w, int h, FrameFormat format) {
  const FrameLayout l = LayoutOf(format.pixels, w, h);
  std::vector<uint8_t> out(l.bytes, 0xa5);
  if (IsYuv420(format.pixels)) {
    const YuvCoefficients k = CoefficientsOf(format.matrix);
    for (int cy = 0; cy < (h + 1) / 2; ++cy) {
      for (int cx = 0; cx < (w + 1) / 2; ++cx) {
        cuda::Yuv420Block(planar.data(), w, h, cx, cy, k, out.data(), out.data() + l.u, out.data() + l.v,
                          l.chroma_step);
      }
    }
  } else {
    const int channels = format.pixels == PixelFormat::kRgba ? 4 : 3;
    for (int64_t i = 0; i < int64_t{w} * h; ++i)
      cuda::PackPixel(planar.data(), int64_t{w} * h, channels, i, out.data());
  }
  return out;
}

TEST(FrameMath, KernelFramesEqualTheHostOracle) {
  const int sizes[][2] = {{64, 48}, {33, 17}, {1, 1}, {1, 2}, {2, 1}, {5, 3}};
  for (const auto& [w, h] : sizes) {
    const std::vector<float> planar = RandomPlanar(w, h, static_cast<uint32_t>(w * 131 + h));
    for (const FrameFormat format :
         {FrameFormat{PixelFormat::kRgb}, FrameFormat{PixelFormat::kRgba},
          FrameFormat{PixelFormat::kI420, YuvMatrix::kBt601}, FrameFormat{PixelFormat::kI420, YuvMatrix::kBt709},
          FrameFormat{PixelFormat::kNv12, YuvMatrix::kBt601}, FrameFormat{PixelFormat::kNv12, YuvMatrix::kBt709}}) {
      SCOPED_TRACE(std::string(PixelFormatName(format.pixels)) + " " + YuvMatrixName(format.matrix) + " " +
                   std::to_string(w) + "x" + std::to_string(h));
      std::vector<uint8_t> want(LayoutOf(format.pixels, w, h).bytes, 0x5a);
      PlanarToPixels(planar.data(), w, h, format, want.data());
      EXPECT_EQ(KernelFrame(planar, w, h, format), want);
    }
  }
}

// Every 97th float bit pattern (all signs, exponents, NaN payloads): the same byte as the host's.
TEST(FrameMath, SampleByteEqualsSampleToByte) {
  uint64_t checked = 0;
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 97, ++checked) {
    const float v = std::bit_cast<float>(static_cast<uint32_t>(bits));
    ASSERT_EQ(cuda::SampleByte(v), SampleToByte(v)) << "bits 0x" << std::hex << bits;
  }
  EXPECT_GT(checked, 44000000u);
}

}  // namespace
}  // namespace ds
