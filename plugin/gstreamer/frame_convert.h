// Pixel conversions from the engine's packed RGB8 frames into the formats ditsrc offers.
// Plain functions over pointers and strides, so the tests can check them without GStreamer.
#pragma once

#include <cstdint>

namespace ditsrc {

struct Plane {
  uint8_t* data;
  int stride;  // bytes per row
};

// Source rows are packed: stride = width · 3.
void RgbToRgb(const uint8_t* rgb, int width, int height, Plane dst);
void RgbToRgba(const uint8_t* rgb, int width, int height, Plane dst);  // alpha = 255
// BT.601 limited range (Y 16–235, Cb/Cr 16–240); chroma is the mean of each 2×2 block (a partial
// block at an odd edge averages the pixels it has).
void RgbToI420(const uint8_t* rgb, int width, int height, Plane y, Plane u, Plane v);

}  // namespace ditsrc
