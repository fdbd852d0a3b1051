#include "writer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "libav.h"
#include "writer_impl.h"

namespace ditgen {

std::string lowercase_extension(const std::string& path) {
  const size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
  std::string ext;
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

namespace {

bool is_pipe_or_device(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

// Standard output by a name (`-o /dev/stdout > clip.y4m`, /dev/fd/1): a stream, whatever it is
// redirected to.
bool names_a_descriptor(const std::string& path) {
  return path == "/dev/stdout" || path.rfind("/dev/fd/", 0) == 0 || path.rfind("/proc/self/fd/", 0) == 0;
}

}  // namespace

std::optional<OutputKind> output_kind(const std::string& path) {
  if (path == "-") return OutputKind::y4m_stdout;
  const std::string ext = lowercase_extension(path);
  if (ext == "y4m") return OutputKind::y4m;
  if (ext == "mp4" || ext == "mkv" || ext == "mov") return OutputKind::encoded;
  // A pipe or a device (/dev/null, a FIFO, >(ffmpeg -i - …)) gets the stream format.
  if (is_pipe_or_device(path) || names_a_descriptor(path)) return OutputKind::y4m;
  return std::nullopt;
}

Status open_video_writer(const std::string& path, std::unique_ptr<FrameWriter>& out) {
  quiet_libav_logging();
  std::optional<OutputKind> kind = output_kind(path);
  if (!kind) return fail("-o {}: unknown format (use {})", path, kOutputExtensions);
  // MP4 and MOV write their index at the start when done: a pipe would fail only after the model
  // loaded and the clip was made.
  if (const std::string ext = lowercase_extension(path); (ext == "mp4" || ext == "mov") && is_pipe_or_device(path)) {
    return fail("-o {}: {} needs a file it can seek in, not a pipe or device; use .mkv or .y4m there", path, ext);
  }
  if (*kind == OutputKind::y4m_stdout) {
    out = make_y4m_writer(OutputFile::standard_output());
    return {};
  }
  std::unique_ptr<OutputFile> file;
  if (Status s = OutputFile::create(path, file); !s.ok()) return s;
  out = *kind == OutputKind::y4m ? make_y4m_writer(std::move(file)) : make_encoded_writer(std::move(file));
  return {};
}

Status open_png_writer(const std::string& dir, std::unique_ptr<FrameWriter>& out) {
  quiet_libav_logging();
  std::unique_ptr<OutputDir> staged;
  if (Status s = OutputDir::create(dir, staged); !s.ok()) return s;
  out = make_png_writer(std::move(staged));
  return {};
}

Status open_strip_writer(const std::string& path, std::unique_ptr<FrameWriter>& out) {
  quiet_libav_logging();
  std::unique_ptr<OutputFile> file;
  if (Status s = OutputFile::create(path, file); !s.ok()) return s;
  out = make_strip_writer(std::move(file));
  return {};
}

}  // namespace ditgen
