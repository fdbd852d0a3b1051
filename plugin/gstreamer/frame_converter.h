// Frames the engine made in another format than the one negotiated now: those generated before a
// format or colorimetry renegotiation (the rest of the clip being made, and the frames queued).
// GstVideoConverter turns them into the new format on the CPU, so that a renegotiation costs no
// regeneration and every timestamp keeps its picture. Streaming thread only.
#pragma once

#include <gst/video/video.h>

#include <cstddef>
#include <cstdint>

#include "ditstream.h"

namespace ditsrc {

// An engine frame's planes, one after the other: planes[i] is rows[i] rows of stride[i] bytes.
struct EnginePlanes {
  ds_pixel_format format;
  ds_yuv_matrix matrix;  // I420's and NV12's
  int width, height, planes;
  const int* stride;
  const int* rows;
  const uint8_t* data;
  size_t size;
};

class FrameConverter {
 public:
  FrameConverter();
  ~FrameConverter();
  FrameConverter(const FrameConverter&) = delete;
  FrameConverter& operator=(const FrameConverter&) = delete;

  // Converts `in` into `out` (a frame mapped for writing, in the negotiated format); false when
  // GStreamer cannot convert between the two.
  bool Convert(const EnginePlanes& in, GstVideoFrame* out);

 private:
  GstVideoConverter* converter_ = nullptr;  // for in_ to out_, kept while they stay the same
  GstVideoInfo in_, out_;
};

}  // namespace ditsrc
