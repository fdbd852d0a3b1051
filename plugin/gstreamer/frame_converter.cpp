#include "frame_converter.h"

#include "pixel_formats.h"

namespace ditsrc {
namespace {

// The layout of an engine frame as GStreamer describes one: its format, colorimetry (YUV: the
// engine's limited-range matrix; RGB: sRGB) and packed planes.
bool InfoOf(const EnginePlanes& in, GstVideoInfo* info) {
  const GstVideoFormat format = GstFormatOf(in.format);
  if (format == GST_VIDEO_FORMAT_UNKNOWN || !gst_video_info_set_format(info, format, in.width, in.height) ||
      static_cast<int>(GST_VIDEO_INFO_N_PLANES(info)) != in.planes) {
    return false;
  }
  if (GST_VIDEO_INFO_IS_YUV(info) &&
      !gst_video_colorimetry_from_string(&info->colorimetry, in.matrix == DS_YUV_BT709 ? "bt709" : "bt601")) {
    return false;
  }
  size_t offset = 0;
  for (int i = 0; i < in.planes; ++i) {
    info->stride[i] = in.stride[i];
    info->offset[i] = offset;
    offset += static_cast<size_t>(in.stride[i]) * in.rows[i];
  }
  if (offset != in.size) return false;
  info->size = offset;
  return true;
}

}  // namespace

FrameConverter::FrameConverter() {
  gst_video_info_init(&in_);
  gst_video_info_init(&out_);
}

FrameConverter::~FrameConverter() {
  if (converter_ != nullptr) gst_video_converter_free(converter_);
}

bool FrameConverter::Convert(const EnginePlanes& in, GstVideoFrame* out) {
  GstVideoInfo in_info;
  if (!InfoOf(in, &in_info)) return false;
  // Only the pixels change: GstVideoConverter wants the rest the same on both sides.
  GST_VIDEO_INFO_FPS_N(&in_info) = GST_VIDEO_INFO_FPS_N(&out->info);
  GST_VIDEO_INFO_FPS_D(&in_info) = GST_VIDEO_INFO_FPS_D(&out->info);
  GST_VIDEO_INFO_PAR_N(&in_info) = GST_VIDEO_INFO_PAR_N(&out->info);
  GST_VIDEO_INFO_PAR_D(&in_info) = GST_VIDEO_INFO_PAR_D(&out->info);
  if (converter_ == nullptr || !gst_video_info_is_equal(&in_info, &in_) ||
      !gst_video_info_is_equal(&out->info, &out_)) {
    if (converter_ != nullptr) gst_video_converter_free(converter_);
    converter_ = gst_video_converter_new(&in_info, &out->info, nullptr);
    if (converter_ == nullptr) return false;
    in_ = in_info;
    out_ = out->info;
  }
  // The engine's bytes, wrapped (not copied) for the time of the conversion.
  GstBuffer* buffer = gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, const_cast<uint8_t*>(in.data), in.size, 0,
                                                  in.size, nullptr, nullptr);
  GstVideoFrame frame;
  const bool mapped = gst_video_frame_map(&frame, &in_info, buffer, GST_MAP_READ);
  if (mapped) {
    gst_video_converter_frame(converter_, &frame, out);
    gst_video_frame_unmap(&frame);
  }
  gst_buffer_unref(buffer);
  return mapped;
}

}  // namespace ditsrc
