// Copies the engine's frames (ds_frame planes: rows packed without padding, in the format the
// element negotiated and asked the engine for) into GStreamer's video frames, whose planes may
// have padded rows. Plain functions over pointers and strides, so the tests can check them
// without GStreamer.
#pragma once

#include <cstdint>

namespace ditsrc {

struct Plane {
  uint8_t* data;
  int stride;  // bytes per row
};

// `rows` rows of `row_bytes` bytes from src (rows src_stride apart) into dst.
void CopyPlane(const uint8_t* src, int src_stride, int row_bytes, int rows, Plane dst);

}  // namespace ditsrc
