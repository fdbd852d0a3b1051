// RGB24 → planar YUV 4:2:0, limited range, through libswscale.
#pragma once

#include <cstdint>
#include <vector>

#include "status.h"

struct SwsContext;

namespace ditgen {

enum class YuvMatrix { bt601, bt709 };

// libswscale's SIMD code reads past the end of its input (up to 25 bytes past a packed RGB24 frame,
// at every size) and writes whole vectors past the end of short rows (under 16 pixels: into the next
// plane or past the buffer). Neither the engine's frame nor Y4M's packed planes have that slack, so
// convert() works on buffers of its own: the input is copied into a padded one, and the output is
// written into aligned, padded planes and then copied row by row to the caller's.
class RgbToYuv420 {
 public:
  RgbToYuv420() = default;
  ~RgbToYuv420();
  RgbToYuv420(const RgbToYuv420&) = delete;
  RgbToYuv420& operator=(const RgbToYuv420&) = delete;

  Status init(int width, int height, YuvMatrix matrix);
  // planes/strides: Y, U, V; chroma planes are ceil(w/2) × ceil(h/2).
  void convert(const uint8_t* rgb, uint8_t* const planes[3], const int strides[3]);

 private:
  SwsContext* sws_ = nullptr;
  int width_ = 0, height_ = 0;
  std::vector<uint8_t> rgb_;  // width·height·3 + padding
  uint8_t* planes_[4] = {};   // Y, U, V in one av_image_alloc allocation
  int strides_[4] = {};
};

}  // namespace ditgen
