// The libav* headers ditgen uses (they lack C++ guards), and help for reporting their errors.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/crc.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <string>

namespace ditgen {

// Keeps libav's own chatter (x264's banner, muxer notes) off stderr; its last error line is kept
// for av_error() instead.
void quiet_libav_logging();

// "what: strerror-like text (last libav error line)", for one-line messages.
std::string av_error(const std::string& what, int err);

}  // namespace ditgen
