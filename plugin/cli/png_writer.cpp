// PNG outputs encoded by libavcodec's PNG encoder: one PNG per frame (frame_00000.png, …) into a
// staged folder, or a strip of evenly spaced frames side by side in one PNG.
#include <algorithm>
#include <cstring>
#include <vector>

#include "libav.h"
#include "output_file.h"
#include "writer_impl.h"

namespace ditgen {
namespace {

// Encodes RGB24 images of one size to PNG bytes.
class PngEncoder {
 public:
  ~PngEncoder() {
    av_packet_free(&packet_);
    av_frame_free(&frame_);
    avcodec_free_context(&encoder_);
  }

  Status open(int width, int height) {
    const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (!codec) return fail("this libavcodec has no PNG encoder");
    encoder_ = avcodec_alloc_context3(codec);
    frame_ = av_frame_alloc();
    packet_ = av_packet_alloc();
    if (!encoder_ || !frame_ || !packet_) return fail("out of memory");
    encoder_->width = width;
    encoder_->height = height;
    encoder_->pix_fmt = AV_PIX_FMT_RGB24;
    encoder_->time_base = AVRational{1, 1};
    if (int err = avcodec_open2(encoder_, codec, nullptr); err < 0)
      return Status::error(av_error("cannot open the PNG encoder", err));
    frame_->format = AV_PIX_FMT_RGB24;
    frame_->width = width;
    frame_->height = height;
    frame_->linesize[0] = width * 3;
    return {};
  }

  // The packet stays valid until the next call.
  Status encode(const uint8_t* rgb, const std::string& what, const AVPacket*& out) {
    av_packet_unref(packet_);
    // Not reference-counted: the encoder reads it during the call and keeps nothing.
    frame_->data[0] = const_cast<uint8_t*>(rgb);
    frame_->pts = pts_++;
    int err = avcodec_send_frame(encoder_, frame_);
    if (err >= 0) err = avcodec_receive_packet(encoder_, packet_);
    if (err < 0) return Status::error(av_error(fmt::format("{}: PNG encoder failed", what), err));
    out = packet_;
    return {};
  }

 private:
  AVCodecContext* encoder_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* packet_ = nullptr;
  int64_t pts_ = 0;
};

class PngWriter final : public FrameWriter {
 public:
  explicit PngWriter(std::unique_ptr<OutputDir> dir) : dir_(std::move(dir)) {}

  Status begin(const VideoFormat& format) override { return png_.open(format.width, format.height); }

  Status write(const uint8_t* rgb) override {
    const std::string name = frame_file_name(index_++);
    const AVPacket* packet = nullptr;
    if (Status s = png_.encode(rgb, dir_->path() + "/" + name, packet); !s.ok()) return s;
    return dir_->write_file(name, packet->data, static_cast<size_t>(packet->size));
  }

  Status commit() override { return dir_->commit(); }

 private:
  std::unique_ptr<OutputDir> dir_;
  PngEncoder png_;
  int64_t index_ = 0;
};

// Up to kTiles evenly spaced frames, first and last included, side by side with a 2-pixel gap.
class StripWriter final : public FrameWriter {
 public:
  static constexpr int kTiles = 8, kGap = 2;
  explicit StripWriter(std::unique_ptr<OutputFile> file) : file_(std::move(file)) {}

  Status begin(const VideoFormat& format) override {
    format_ = format;
    tiles_ = std::clamp(format.frames, 1, kTiles);
    strip_width_ = tiles_ * format.width + (tiles_ - 1) * kGap;
    strip_.assign(static_cast<size_t>(strip_width_) * format.height * 3, 0);
    return png_.open(strip_width_, format.height);
  }

  Status write(const uint8_t* rgb) override {
    const int frame = index_++;
    for (int tile = 0; tile < tiles_; ++tile) {
      if (TileFrame(tile) != frame) continue;
      const size_t row = static_cast<size_t>(format_.width) * 3;
      for (int y = 0; y < format_.height; ++y) {
        std::memcpy(&strip_[(static_cast<size_t>(y) * strip_width_ + tile * (format_.width + kGap)) * 3], rgb + y * row,
                    row);
      }
    }
    return {};
  }

  Status finish() override {
    const AVPacket* packet = nullptr;
    if (Status s = png_.encode(strip_.data(), file_->path(), packet); !s.ok()) return s;
    return file_->write(packet->data, static_cast<size_t>(packet->size));
  }
  Status commit() override { return file_->commit(); }

 private:
  int TileFrame(int tile) const {
    return tiles_ == 1 ? 0 : static_cast<int>(static_cast<int64_t>(tile) * (format_.frames - 1) / (tiles_ - 1));
  }
  std::unique_ptr<OutputFile> file_;
  PngEncoder png_;
  VideoFormat format_;
  std::vector<uint8_t> strip_;
  int tiles_ = 1, strip_width_ = 0, index_ = 0;
};

}  // namespace

std::unique_ptr<FrameWriter> make_png_writer(std::unique_ptr<OutputDir> dir) {
  return std::make_unique<PngWriter>(std::move(dir));
}

std::unique_ptr<FrameWriter> make_strip_writer(std::unique_ptr<OutputFile> file) {
  return std::make_unique<StripWriter>(std::move(file));
}

}  // namespace ditgen
