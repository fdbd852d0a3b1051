// The engine's pixel formats (ds_pixel_format) and GStreamer's video formats for the same bytes:
// one table, both directions.
#pragma once

#include <gst/video/video.h>

#include "ditstream.h"

namespace ditsrc {

struct PixelFormatPair {
  ds_pixel_format engine;
  GstVideoFormat gst;
};
inline constexpr PixelFormatPair kPixelFormats[] = {{DS_PIXEL_RGB, GST_VIDEO_FORMAT_RGB},
                                                    {DS_PIXEL_RGBA, GST_VIDEO_FORMAT_RGBA},
                                                    {DS_PIXEL_I420, GST_VIDEO_FORMAT_I420},
                                                    {DS_PIXEL_NV12, GST_VIDEO_FORMAT_NV12}};

// GST_VIDEO_FORMAT_UNKNOWN for none.
inline GstVideoFormat GstFormatOf(ds_pixel_format format) {
  for (const PixelFormatPair& p : kPixelFormats) {
    if (p.engine == format) return p.gst;
  }
  return GST_VIDEO_FORMAT_UNKNOWN;
}

// The engine's format for a negotiated one (the engine makes frames in it on its device, the
// element copies them); RGB for a format the caps never offer.
inline ds_pixel_format EngineFormatOf(GstVideoFormat format) {
  for (const PixelFormatPair& p : kPixelFormats) {
    if (p.gst == format) return p.engine;
  }
  return DS_PIXEL_RGB;
}

}  // namespace ditsrc
