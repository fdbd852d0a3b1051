// Video frames as the front ends take them: 8-bit RGB, RGBA or I420 (BT.601 limited range), made
// from a decoder's planar float RGB in [−1, 1]. These host functions are the oracle that every
// backend's Backend::planar_to_pixels matches bit for bit: one float rounding per sample, then
// integer arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ds {

enum class PixelFormat : uint8_t { kRgb, kRgba, kI420 };

// BT.601 limited-range coefficients scaled by 2^16, rounded so that each chroma row sums to zero
// (grey stays exactly at 128); shared with the GPU's conversion (kernels/cuda/frame.cu).
namespace bt601 {
inline constexpr int64_t kYr = 16829, kYg = 33039, kYb = 6416;
inline constexpr int64_t kUr = -9714, kUg = -19070, kUb = 28784;
inline constexpr int64_t kVr = 28784, kVg = -24103, kVb = -4681;
}  // namespace bt601

const char* PixelFormatName(PixelFormat format);  // "RGB", "RGBA", "I420"

// Where a frame's planes lie in one packed buffer: RGB and RGBA one plane of width·3 or width·4
// bytes a row; I420 the Y plane (width a row), then U and V ((width + 1)/2 a row, (height + 1)/2
// rows each: a chroma sample per 2×2 block, the blocks at an odd edge cut short).
struct FrameLayout {
  int planes = 0;
  size_t offset[3] = {};
  int stride[3] = {};  // bytes a row
  int rows[3] = {};
  size_t bytes = 0;  // the whole frame
};
FrameLayout LayoutOf(PixelFormat format, int width, int height);

// An 8-bit sample from a float one: round(clamp((v + 1)·127.5, 0, 255)), halves away from zero;
// NaN gives 0.
uint8_t SampleToByte(float v);

// The frame in `format` from planar [3, H, W] floats, into out[LayoutOf(format, width,
// height).bytes]. RGBA's alpha is 255. I420 converts the RGB8 samples with BT.601 limited-range
// coefficients (Y 16–235, Cb/Cr 16–240) scaled by 2^16, each chroma sample from the mean of its
// block's pixels, rounded to nearest.
void PlanarToPixels(const float* planar, int width, int height, PixelFormat format, uint8_t* out);

}  // namespace ds
