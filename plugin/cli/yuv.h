// RGB24 → planar YUV 4:2:0, limited range, through libswscale.
#pragma once

#include <cstdint>

#include "status.h"

struct SwsContext;

namespace ditgen {

enum class YuvMatrix { bt601, bt709 };

class RgbToYuv420 {
 public:
  RgbToYuv420() = default;
  ~RgbToYuv420();
  RgbToYuv420(const RgbToYuv420&) = delete;
  RgbToYuv420& operator=(const RgbToYuv420&) = delete;

  Status init(int width, int height, YuvMatrix matrix);
  // planes/strides: Y, U, V; chroma planes are ceil(w/2) × ceil(h/2).
  void convert(const uint8_t* rgb, uint8_t* const planes[3], const int strides[3]) const;

 private:
  SwsContext* sws_ = nullptr;
  int width_ = 0, height_ = 0;
};

}  // namespace ditgen
