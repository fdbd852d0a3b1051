// YUV4MPEG2: a text header, then "FRAME\n" and the raw Y, U, V planes of each frame.
#include <vector>

#include "output_file.h"
#include "writer.h"
#include "yuv.h"

namespace ditgen {
namespace {

class Y4mWriter final : public FrameWriter {
 public:
  explicit Y4mWriter(std::unique_ptr<OutputFile> file) : file_(std::move(file)) {}

  Status begin(const VideoFormat& format) override {
    // Y4M declares no matrix; readers assume BT.601 for untagged YUV.
    if (Status s = yuv_.init(format.width, format.height, YuvMatrix::bt601); !s.ok()) return s;
    int chroma_w = (format.width + 1) / 2, chroma_h = (format.height + 1) / 2;
    strides_[0] = format.width;
    strides_[1] = strides_[2] = chroma_w;
    const std::string tag = "FRAME\n";
    size_t luma = size_t(format.width) * format.height, chroma = size_t(chroma_w) * chroma_h;
    frame_.assign(tag.size() + luma + 2 * chroma, 0);
    std::copy(tag.begin(), tag.end(), frame_.begin());
    planes_[0] = frame_.data() + tag.size();
    planes_[1] = planes_[0] + luma;
    planes_[2] = planes_[1] + chroma;
    std::string header = fmt::format("YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n",
                                     format.width, format.height, format.fps_num, format.fps_den);
    return file_->write(header.data(), header.size());
  }

  Status write(const uint8_t* rgb) override {
    yuv_.convert(rgb, planes_, strides_);
    return file_->write(frame_.data(), frame_.size());
  }

  Status commit() override { return file_->commit(); }

 private:
  std::unique_ptr<OutputFile> file_;
  RgbToYuv420 yuv_;
  std::vector<uint8_t> frame_;  // "FRAME\n" + planes, written with one call so pipes see whole frames
  uint8_t* planes_[3] = {};
  int strides_[3] = {};
};

}  // namespace

std::unique_ptr<FrameWriter> make_y4m_writer(std::unique_ptr<OutputFile> file) {
  return std::make_unique<Y4mWriter>(std::move(file));
}

}  // namespace ditgen
