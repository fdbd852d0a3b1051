// Video frames as the front ends take them: 8-bit RGB, RGBA, or 4:2:0 YUV (I420 or NV12, BT.601 or
// BT.709 limited range), made from a decoder's planar float RGB in [−1, 1]. These host functions
// are the oracle that every backend's Backend::planar_to_pixels matches bit for bit: one float
// rounding per sample, then integer arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ds {

// kNv12 is I420's samples with U and V interleaved in one plane: what hardware encoders (NVENC,
// VA-API, V4L2) take.
enum class PixelFormat : uint8_t { kRgb, kRgba, kI420, kNv12 };
bool IsYuv420(PixelFormat format);  // I420 or NV12

// The Y'CbCr matrix of YUV frames, limited range (Y 16–235, Cb/Cr 16–240). GStreamer assumes
// BT.601 for SD and BT.709 for HD YUV without colorimetry (FFmpeg's swscale assumes BT.601 for
// both); a frame converted with one matrix and shown with the other has its colours shifted (greens
// and reds most). Chroma is sited at the centre of its 2×2 block (the block's mean): GStreamer's
// chroma-site "jpeg", FFmpeg's AVCHROMA_LOC_CENTER.
enum class YuvMatrix : uint8_t { kBt601, kBt709 };

// What a consumer asks the engine for: the layout, and for YUV the matrix (RGB ignores it).
struct FrameFormat {
  PixelFormat pixels = PixelFormat::kRgb;
  YuvMatrix matrix = YuvMatrix::kBt601;  // an aggregate: no silent conversion from a PixelFormat
};

// A matrix's weights for R, G and B (8-bit samples) scaled by 2^16 and rounded, the G weight of
// Cb and Cr set so that each chroma row sums to zero (grey stays exactly at 128). The host
// conversion and the GPU's (kernels/cuda/frame.cu) use the same integers.
struct YuvCoefficients {
  int32_t y[3], u[3], v[3];
};
YuvCoefficients CoefficientsOf(YuvMatrix matrix);

const char* PixelFormatName(PixelFormat format);  // "RGB", "RGBA", "I420", "NV12"
const char* YuvMatrixName(YuvMatrix matrix);      // "BT.601", "BT.709"

// Where a frame's planes lie in one packed buffer: RGB and RGBA one plane of width·3 or width·4
// bytes a row; I420 the Y plane (width a row), then U and V ((width + 1)/2 a row, (height + 1)/2
// rows each: a chroma sample per 2×2 block, the blocks at an odd edge cut short); NV12 the Y plane,
// then one plane of U, V pairs (2·((width + 1)/2) bytes a row, (height + 1)/2 rows).
struct FrameLayout {
  int planes = 0;
  size_t offset[3] = {};
  int stride[3] = {};  // bytes a row
  int rows[3] = {};
  size_t bytes = 0;  // the whole frame
  // YUV: chroma block k's U sample at u + k·chroma_step, its V at v + k·chroma_step (I420: the U
  // and V planes, step 1; NV12: the pairs, v = u + 1, step 2). 0 for RGB.
  size_t u = 0, v = 0;
  int chroma_step = 0;
};
FrameLayout LayoutOf(PixelFormat format, int width, int height);

// An 8-bit sample from a float one: round(clamp((v + 1)·127.5, 0, 255)), halves away from zero;
// NaN gives 0.
uint8_t SampleToByte(float v);

// The frame in `format` from planar [3, H, W] floats, into out[LayoutOf(format.pixels, width,
// height).bytes]. RGBA's alpha is 255. I420 and NV12 convert the RGB8 samples with
// CoefficientsOf(format.matrix), each chroma sample from the mean of its block's pixels, rounded to
// nearest.
void PlanarToPixels(const float* planar, int width, int height, FrameFormat format, uint8_t* out);

}  // namespace ds
