#include "yuv.h"

#include "libav.h"

namespace ditgen {

RgbToYuv420::~RgbToYuv420() { sws_freeContext(sws_); }

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
  return {};
}

void RgbToYuv420::convert(const uint8_t* rgb, uint8_t* const planes[3], const int strides[3]) const {
  const uint8_t* src[1] = {rgb};
  const int src_stride[1] = {width_ * 3};
  sws_scale(sws_, src, src_stride, 0, height_, planes, strides);
}

}  // namespace ditgen
