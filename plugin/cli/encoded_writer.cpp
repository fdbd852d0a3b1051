// H.264 (libx264 when present) in the container the file name asks for (.mp4, .mkv, .mov).
//
// The muxer writes through our own AVIOContext onto the OutputFile, so the temporary-file-and-rename
// scheme and its error messages (the user's path, the real errno) hold for libav output too.
#include <string_view>

#include "libav.h"
#include "output_file.h"
#include "writer_impl.h"
#include "yuv.h"

namespace ditgen {
namespace {

constexpr int kIoBufferSize = 1 << 16;

class EncodedWriter final : public FrameWriter {
 public:
  explicit EncodedWriter(std::unique_ptr<OutputFile> file) : file_(std::move(file)) {}
  ~EncodedWriter() override;

  Status begin(const VideoFormat& format) override;
  Status write(const uint8_t* rgb) override;
  Status finish() override;
  Status commit() override { return file_->commit(); }

 private:
  Status open_encoder(const VideoFormat& format);
  Status open_muxer(const VideoFormat& format);
  Status encode(const AVFrame* frame);  // nullptr drains the encoder
  Status muxer_error(const char* what, int err);

#if LIBAVFORMAT_VERSION_MAJOR < 61
  static int write_packet(void* opaque, uint8_t* data, int size);
#else
  static int write_packet(void* opaque, const uint8_t* data, int size);
#endif
  static int64_t seek(void* opaque, int64_t offset, int whence);

  std::unique_ptr<OutputFile> file_;
  Status io_status_;  // the first write error the muxer ran into, with its real cause
  RgbToYuv420 yuv_;
  AVFormatContext* muxer_ = nullptr;
  AVIOContext* io_ = nullptr;
  AVCodecContext* encoder_ = nullptr;
  AVStream* stream_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* packet_ = nullptr;
  int64_t next_pts_ = 0;
};

EncodedWriter::~EncodedWriter() {
  av_packet_free(&packet_);
  av_frame_free(&frame_);
  avcodec_free_context(&encoder_);
  if (io_) av_freep(&io_->buffer);
  avio_context_free(&io_);
  avformat_free_context(muxer_);
}

Status EncodedWriter::begin(const VideoFormat& format) {
  if (format.width % 2 || format.height % 2)
    return fail("{}: H.264 4:2:0 needs an even width and height, not {}x{} (write .y4m instead)", file_->path(),
                format.width, format.height);
  if (Status s = yuv_.init(format.width, format.height, YuvMatrix::bt709); !s.ok()) return s;
  if (Status s = open_encoder(format); !s.ok()) return s;
  if (Status s = open_muxer(format); !s.ok()) return s;
  frame_ = av_frame_alloc();
  packet_ = av_packet_alloc();
  if (!frame_ || !packet_) return fail("out of memory");
  frame_->format = AV_PIX_FMT_YUV420P;
  frame_->width = format.width;
  frame_->height = format.height;
  if (int err = av_frame_get_buffer(frame_, 0); err < 0) return Status::error(av_error("frame buffer", err));
  return {};
}

Status EncodedWriter::open_encoder(const VideoFormat& format) {
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
  if (!codec) return fail("this libavcodec has no H.264 encoder (write .y4m instead)");
  encoder_ = avcodec_alloc_context3(codec);
  if (!encoder_) return fail("out of memory");
  encoder_->width = format.width;
  encoder_->height = format.height;
  encoder_->pix_fmt = AV_PIX_FMT_YUV420P;
  encoder_->time_base = AVRational{format.fps_den, format.fps_num};
  encoder_->framerate = AVRational{format.fps_num, format.fps_den};
  encoder_->sample_aspect_ratio = AVRational{1, 1};
  // Tagged so that players convert back with the matrix we converted with.
  encoder_->color_range = AVCOL_RANGE_MPEG;
  encoder_->colorspace = AVCOL_SPC_BT709;
  encoder_->color_primaries = AVCOL_PRI_BT709;
  encoder_->color_trc = AVCOL_TRC_BT709;
  if (std::string(codec->name) == "libx264") {
    // Visually lossless for generated content at a speed that never bottlenecks generation.
    av_opt_set(encoder_->priv_data, "preset", "fast", 0);
    av_opt_set(encoder_->priv_data, "crf", "18", 0);
  }
  const AVOutputFormat* container = av_guess_format(nullptr, file_->path().c_str(), nullptr);
  if (container && (container->flags & AVFMT_GLOBALHEADER)) encoder_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (int err = avcodec_open2(encoder_, codec, nullptr); err < 0)
    return Status::error(av_error(fmt::format("cannot open the H.264 encoder {}", codec->name), err));
  return {};
}

Status EncodedWriter::open_muxer(const VideoFormat& format) {
  const std::string& path = file_->path();
  if (int err = avformat_alloc_output_context2(&muxer_, nullptr, nullptr, path.c_str()); err < 0)
    return Status::error(av_error(fmt::format("{}: no muxer for this file name", path), err));
  stream_ = avformat_new_stream(muxer_, nullptr);
  if (!stream_) return fail("out of memory");
  if (int err = avcodec_parameters_from_context(stream_->codecpar, encoder_); err < 0)
    return Status::error(av_error("stream parameters", err));
  stream_->time_base = encoder_->time_base;
  stream_->avg_frame_rate = encoder_->framerate;

  auto* buffer = static_cast<uint8_t*>(av_malloc(kIoBufferSize));
  if (!buffer) return fail("out of memory");
  io_ = avio_alloc_context(buffer, kIoBufferSize, 1, this, nullptr, &EncodedWriter::write_packet,
                           file_->seekable() ? &EncodedWriter::seek : nullptr);
  if (!io_) {
    av_free(buffer);
    return fail("out of memory");
  }
  io_->seekable = file_->seekable() ? AVIO_SEEKABLE_NORMAL : 0;
  muxer_->pb = io_;
  muxer_->flags |= AVFMT_FLAG_CUSTOM_IO;
  if (!format.title.empty()) av_dict_set(&muxer_->metadata, "title", format.title.c_str(), 0);
  if (!format.provenance.empty()) av_dict_set(&muxer_->metadata, "comment", format.provenance.c_str(), 0);
  // QuickTime's title and comment atoms (.mov) hold a 16-bit length: FFmpeg would cut a longer
  // value (a prompt over 64 KB, or its provenance record, which holds the prompt too) at that length
  // modulo 65536. Such values go as metadata-keys atoms (32-bit sizes), which FFmpeg and QuickTime
  // also read; short ones keep the classic atoms that every player shows.
  AVDictionary* options = nullptr;
  constexpr size_t kQuickTimeAtomMax = 65535;
  if (std::string_view(muxer_->oformat->name) == "mov" &&
      (format.title.size() > kQuickTimeAtomMax || format.provenance.size() > kQuickTimeAtomMax)) {
    av_dict_set(&options, "movflags", "use_metadata_tags", 0);
  }
  const int err = avformat_write_header(muxer_, &options);
  av_dict_free(&options);
  if (err < 0) return muxer_error("cannot start", err);
  return {};
}

Status EncodedWriter::write(const uint8_t* rgb) {
  if (int err = av_frame_make_writable(frame_); err < 0) return Status::error(av_error("frame buffer", err));
  yuv_.convert(rgb, frame_->data, frame_->linesize);
  frame_->pts = next_pts_++;
  return encode(frame_);
}

Status EncodedWriter::encode(const AVFrame* frame) {
  if (int err = avcodec_send_frame(encoder_, frame); err < 0)
    return Status::error(av_error(fmt::format("{}: H.264 encoder failed", file_->path()), err));
  for (;;) {
    int err = avcodec_receive_packet(encoder_, packet_);
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return {};
    if (err < 0) return Status::error(av_error(fmt::format("{}: H.264 encoder failed", file_->path()), err));
    packet_->stream_index = stream_->index;
    if (packet_->duration == 0) packet_->duration = 1;  // one frame, in the encoder's 1/fps time base
    av_packet_rescale_ts(packet_, encoder_->time_base, stream_->time_base);
    err = av_interleaved_write_frame(muxer_, packet_);  // takes the packet's reference
    if (err < 0) return muxer_error("cannot write", err);
  }
}

Status EncodedWriter::finish() {
  if (Status s = encode(nullptr); !s.ok()) return s;
  if (int err = av_write_trailer(muxer_); err < 0) return muxer_error("cannot finish", err);
  avio_flush(io_);
  if (io_->error < 0) return muxer_error("cannot write", io_->error);
  return {};
}

Status EncodedWriter::muxer_error(const char* what, int err) {
  if (!io_status_.ok()) return io_status_;
  return Status::error(av_error(fmt::format("{} {}", what, file_->path()), err));
}

#if LIBAVFORMAT_VERSION_MAJOR < 61
int EncodedWriter::write_packet(void* opaque, uint8_t* data, int size) {
#else
int EncodedWriter::write_packet(void* opaque, const uint8_t* data, int size) {
#endif
  auto* self = static_cast<EncodedWriter*>(opaque);
  if (!self->io_status_.ok()) return AVERROR(EIO);
  self->io_status_ = self->file_->write(data, static_cast<size_t>(size));
  return self->io_status_.ok() ? size : AVERROR(EIO);
}

int64_t EncodedWriter::seek(void* opaque, int64_t offset, int whence) {
  auto* self = static_cast<EncodedWriter*>(opaque);
  if (whence & AVSEEK_SIZE) {
    int64_t size = self->file_->size();
    return size < 0 ? AVERROR(-size) : size;
  }
  int64_t pos = self->file_->seek(offset, whence & ~AVSEEK_FORCE);
  return pos < 0 ? AVERROR(-pos) : pos;
}

}  // namespace

std::unique_ptr<FrameWriter> make_encoded_writer(std::unique_ptr<OutputFile> file) {
  return std::make_unique<EncodedWriter>(std::move(file));
}

}  // namespace ditgen
