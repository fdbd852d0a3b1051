// Fuzz target: ditgen's Y4M output (plugin/cli/y4m_writer.cpp), the one place the project writes a
// container byte by byte. ditstream reads no Y4M itself, so a parser of ours would fuzz nothing
// shipped; instead the writer is driven with fuzzed frame sizes (odd ones too, beyond what models
// produce), rates and pixels, and its file is read back by an independent strict parser.
// Input: [width-1] [height-1] [fps_num] [fps_den] [flags: frames = bits 0-2, abandon = 0x40,
// flat = 0x80] then pixel bytes, repeated to fill each frame (flat: one RGB colour per frame).
// Checks: the header states the size and rate given; the file holds exactly the frames written, each
// "FRAME\n" + Y + U + V with ceil(w/2)·ceil(h/2) chroma; luma is BT.601 limited range within 1; flat
// frames have the right chroma; a writer destroyed before commit() (or that fails) leaves no file
// and no temporary behind.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include <libavutil/log.h>
}

#include "output_file.h"
#include "tests/fuzz/fuzz_util.h"
#include "writer.h"
#include "writer_impl.h"

namespace {

namespace fs = std::filesystem;

struct Y4m {
  int width = 0, height = 0, fps_num = 0, fps_den = 0;
  std::vector<std::string> frames;  // Y, U, V planes of each frame
};

// Strict: exactly the header ditgen documents, then whole frames and nothing else. Empty when the
// file parses, else what is wrong.
std::string Parse(const std::string& file, Y4m& out) {
  const size_t nl = file.find('\n');
  if (nl == std::string::npos) return "no header line";
  const std::string header = file.substr(0, nl);
  char tail[128] = {};
  if (std::sscanf(header.c_str(), "YUV4MPEG2 W%d H%d F%d:%d %127[^\n]", &out.width, &out.height, &out.fps_num,
                  &out.fps_den, tail) != 5 ||
      std::string(tail) != "Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED") {
    return "bad header: " + header;
  }
  const size_t cw = (out.width + 1) / 2, ch = (out.height + 1) / 2;
  const size_t frame = size_t(out.width) * out.height + 2 * cw * ch;
  for (size_t pos = nl + 1; pos < file.size(); pos += 6 + frame) {
    if (file.compare(pos, 6, "FRAME\n") != 0) return "no FRAME tag at " + std::to_string(pos);
    if (file.size() - pos - 6 < frame) return "a truncated frame";
    out.frames.push_back(file.substr(pos + 6, frame));
  }
  return {};
}

int Clamp(double v) { return static_cast<int>(std::lround(std::min(255.0, std::max(0.0, v)))); }
int Luma(int r, int g, int b) { return Clamp(16 + 219.0 / 255 * (0.299 * r + 0.587 * g + 0.114 * b)); }
int Cb(int r, int g, int b) { return Clamp(128 + 224.0 / 255 * (-0.168736 * r - 0.331264 * g + 0.5 * b)); }
int Cr(int r, int g, int b) { return Clamp(128 + 224.0 / 255 * (0.5 * r - 0.418688 * g - 0.081312 * b)); }

bool FolderEmpty(const std::string& dir) { return fs::is_empty(dir); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    av_log_set_level(AV_LOG_QUIET);
    return ds::fuzz::ScratchDir("y4m");
  }();
  if (size < 5) return -1;
  ditgen::VideoFormat format;
  format.width = 1 + data[0] % 48;
  format.height = 1 + data[1] % 48;
  format.fps_num = 1 + data[2];
  format.fps_den = 1 + data[3];
  format.frames = data[4] & 7;
  const bool abandon = data[4] & 0x40, flat = data[4] & 0x80;
  const uint8_t* pixels = data + 5;
  const size_t npixels = size - 5;

  const std::string path = dir + "/out.y4m";
  std::vector<std::vector<uint8_t>> written;
  {
    std::unique_ptr<ditgen::OutputFile> file;
    FUZZ_CHECK(ditgen::OutputFile::create(path, file).ok(), "cannot create %s", path.c_str());
    auto writer = ditgen::make_y4m_writer(std::move(file));
    if (!writer->begin(format).ok()) {
      writer.reset();
      FUZZ_CHECK(FolderEmpty(dir), "a failed writer left files behind");
      return 0;
    }
    const size_t frame_bytes = size_t(format.width) * format.height * 3;
    for (int f = 0; f < format.frames; ++f) {
      std::vector<uint8_t> rgb(frame_bytes);
      for (size_t i = 0; i < frame_bytes; ++i) {
        const size_t k = flat ? 3 * f + i % 3 : f * frame_bytes + i;
        rgb[i] = npixels ? pixels[k % npixels] : 0;
      }
      FUZZ_CHECK(writer->write(rgb.data()).ok(), "write failed");
      written.push_back(std::move(rgb));
    }
    if (abandon) {
      writer.reset();
      FUZZ_CHECK(FolderEmpty(dir), "an abandoned writer left files behind");
      return 0;
    }
    FUZZ_CHECK(writer->finish().ok(), "finish failed");
    FUZZ_CHECK(writer->commit().ok(), "commit failed");
  }
  std::ifstream in(path, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(path);
  FUZZ_CHECK(FolderEmpty(dir), "temporary files left behind");

  Y4m y;
  const std::string why = Parse(file, y);
  FUZZ_CHECK(why.empty(), "%dx%d, %d frames: %s", format.width, format.height, format.frames, why.c_str());
  FUZZ_CHECK(y.width == format.width && y.height == format.height && y.fps_num == format.fps_num &&
                 y.fps_den == format.fps_den,
             "header says W%d H%d F%d:%d", y.width, y.height, y.fps_num, y.fps_den);
  FUZZ_CHECK(y.frames.size() == written.size(), "%zu frames read, %zu written", y.frames.size(), written.size());
  const int w = format.width, h = format.height;
  for (size_t f = 0; f < written.size(); ++f) {
    const uint8_t* rgb = written[f].data();
    const auto* yuv = reinterpret_cast<const uint8_t*>(y.frames[f].data());
    for (int i = 0; i < w * h; ++i) {
      const int want = Luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
      FUZZ_CHECK(std::abs(yuv[i] - want) <= 1, "%dx%d frame %zu pixel %d: Y %d, want %d", w, h, f, i, yuv[i], want);
    }
    if (!flat) continue;
    const int chroma = ((w + 1) / 2) * ((h + 1) / 2);
    const int cb = Cb(rgb[0], rgb[1], rgb[2]), cr = Cr(rgb[0], rgb[1], rgb[2]);
    for (int i = 0; i < chroma; ++i) {
      const int u = yuv[w * h + i], v = yuv[w * h + chroma + i];
      FUZZ_CHECK(std::abs(u - cb) <= 1 && std::abs(v - cr) <= 1, "%dx%d frame %zu chroma %d: %d,%d want %d,%d", w, h,
                 f, i, u, v, cb, cr);
    }
  }
  return 0;
}
