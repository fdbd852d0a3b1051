// Frame writers: where generated RGB frames go, one frame at a time as they arrive.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "status.h"

namespace ditgen {

struct VideoFormat {
  int width = 0, height = 0;
  int fps_num = 0, fps_den = 1;
  int frames = 0;  // expected count; writers must cope with fewer (cancellation)
  // Metadata, for writers whose format stores it (MP4, MKV, MOV; PNG as text chunks); empty: none.
  std::string title;       // the prompt
  std::string provenance;  // ds_get_provenance's JSON, as the comment
};

// Life cycle: created (its output file is reserved at once, so an unwritable path fails before the
// model loads) → begin() → write() per frame → finish(), which writes what is left (trailers, the
// strip) → commit(), which makes the output visible. Every writer finishes before any commits, so
// that one failing (a full disk) leaves no output of the run, nor replaces an earlier one.
// Destroying a writer without commit() removes everything it wrote.
class FrameWriter {
 public:
  virtual ~FrameWriter() = default;
  virtual Status begin(const VideoFormat& format) = 0;
  virtual Status write(const uint8_t* rgb) = 0;  // width·height·3 bytes, rows packed
  virtual Status finish() { return {}; }
  virtual Status commit() = 0;
};

enum class OutputKind {
  y4m_stdout,  // "-"
  y4m,         // .y4m, or an existing pipe or device
  encoded,     // .mp4 .mkv .mov: H.264 through libavcodec/libavformat
};

// "clip.MP4" → "mp4"; empty without one.
std::string lowercase_extension(const std::string& path);
// nullopt when the path's extension names no format ditgen writes.
std::optional<OutputKind> output_kind(const std::string& path);
inline constexpr const char* kOutputExtensions =
    ".mp4, .mkv, .mov, .y4m, a pipe or device (Y4M), or - (Y4M on standard output)";

Status open_video_writer(const std::string& path, std::unique_ptr<FrameWriter>& out);
Status open_png_writer(const std::string& dir, std::unique_ptr<FrameWriter>& out);
// One PNG showing up to 8 evenly spaced frames side by side (for READMEs and bug reports).
Status open_strip_writer(const std::string& path, std::unique_ptr<FrameWriter>& out);

}  // namespace ditgen
