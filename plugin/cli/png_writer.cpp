// One PNG per frame (frame_00000.png, …) into a staged folder, encoded by libavcodec's PNG encoder.
#include "libav.h"
#include "output_file.h"
#include "writer_impl.h"

namespace ditgen {
namespace {

class PngWriter final : public FrameWriter {
 public:
  explicit PngWriter(std::unique_ptr<OutputDir> dir) : dir_(std::move(dir)) {}
  ~PngWriter() override {
    av_packet_free(&packet_);
    av_frame_free(&frame_);
    avcodec_free_context(&encoder_);
  }

  Status begin(const VideoFormat& format) override {
    const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (!codec) return fail("this libavcodec has no PNG encoder");
    encoder_ = avcodec_alloc_context3(codec);
    frame_ = av_frame_alloc();
    packet_ = av_packet_alloc();
    if (!encoder_ || !frame_ || !packet_) return fail("out of memory");
    encoder_->width = format.width;
    encoder_->height = format.height;
    encoder_->pix_fmt = AV_PIX_FMT_RGB24;
    encoder_->time_base = AVRational{format.fps_den, format.fps_num};
    if (int err = avcodec_open2(encoder_, codec, nullptr); err < 0)
      return Status::error(av_error("cannot open the PNG encoder", err));
    frame_->format = AV_PIX_FMT_RGB24;
    frame_->width = format.width;
    frame_->height = format.height;
    frame_->linesize[0] = format.width * 3;
    return {};
  }

  Status write(const uint8_t* rgb) override {
    // Not reference-counted: the encoder reads it during the call and keeps nothing.
    frame_->data[0] = const_cast<uint8_t*>(rgb);
    frame_->pts = index_;
    std::string name = fmt::format("frame_{:05d}.png", index_++);
    int err = avcodec_send_frame(encoder_, frame_);
    if (err >= 0) err = avcodec_receive_packet(encoder_, packet_);
    if (err < 0) return Status::error(av_error(fmt::format("{}/{}: PNG encoder failed", dir_->path(), name), err));
    Status s = dir_->write_file(name, packet_->data, static_cast<size_t>(packet_->size));
    av_packet_unref(packet_);
    return s;
  }

  Status finish() override { return dir_->commit(); }

 private:
  std::unique_ptr<OutputDir> dir_;
  AVCodecContext* encoder_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* packet_ = nullptr;
  int64_t index_ = 0;
};

}  // namespace

std::unique_ptr<FrameWriter> make_png_writer(std::unique_ptr<OutputDir> dir) {
  return std::make_unique<PngWriter>(std::move(dir));
}

}  // namespace ditgen
