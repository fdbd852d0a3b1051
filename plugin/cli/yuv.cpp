#include "yuv.h"

#include <algorithm>

#include "libav.h"

namespace ditgen {

namespace {

constexpr size_t kInputPadding = 64;  // AV_INPUT_BUFFER_PADDING_SIZE of FFmpeg 5 and 6

}  // namespace

RgbToYuv420::~RgbToYuv420() {
  sws_freeContext(sws_);
  av_freep(&planes_[0]);
}

Status RgbToYuv420::init(int width, int height, YuvMatrix matrix) {
  width_ = width;
  height_ = height;
  // Same size in and out: the flags only pick how chroma is subsampled; full-resolution chroma input
  // and accurate rounding keep edges clean at these small sizes.
  sws_ = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                        SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr);
  if (!sws_) return fail("cannot convert {}x{} RGB to YUV 4:2:0", width, height);
  const int* coefficients = sws_getCoefficients(matrix == YuvMatrix::bt709 ? SWS_CS_ITU709 : SWS_CS_ITU601);
  const int full_range_in = 1, limited_range_out = 0;
  sws_setColorspaceDetails(sws_, coefficients, full_range_in, coefficients, limited_range_out, 0, 1 << 16, 1 << 16);
  rgb_.assign(size_t(width) * height * 3 + kInputPadding, 0);
  if (av_image_alloc(planes_, strides_, width, height, AV_PIX_FMT_YUV420P, 64) < 0) {
    return fail("cannot allocate a {}x{} YUV 4:2:0 frame", width, height);
  }
  return {};
}

void RgbToYuv420::convert(const uint8_t* rgb, uint8_t* const planes[3], const int strides[3]) {
  std::copy_n(rgb, size_t(width_) * height_ * 3, rgb_.begin());
  const uint8_t* src[1] = {rgb_.data()};
  const int src_stride[1] = {width_ * 3};
  sws_scale(sws_, src, src_stride, 0, height_, planes_, strides_);
  for (int p = 0; p < 3; ++p) {
    const int w = p == 0 ? width_ : (width_ + 1) / 2, h = p == 0 ? height_ : (height_ + 1) / 2;
    for (int y = 0; y < h; ++y)
      std::copy_n(planes_[p] + size_t(y) * strides_[p], w, planes[p] + size_t(y) * strides[p]);
  }
}

}  // namespace ditgen
