// PNG outputs encoded by libavcodec's PNG encoder: one PNG per frame (frame_00000.png, …) into a
// staged folder, or a strip of evenly spaced frames side by side in one PNG.
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "libav.h"
#include "output_file.h"
#include "writer_impl.h"

namespace ditgen {
namespace {

// The PNG signature and the IHDR chunk (length, type, 13 bytes, CRC) lead every PNG.
constexpr size_t kSignatureAndHeader = 8 + 4 + 4 + 13 + 4;

void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// An iTXt chunk (UTF-8 text, uncompressed, no language): a keyword and its text.
void PutTextChunk(std::vector<uint8_t>& out, const std::string& keyword, const std::string& text) {
  std::vector<uint8_t> chunk = {'i', 'T', 'X', 't'};
  chunk.insert(chunk.end(), keyword.begin(), keyword.end());
  chunk.insert(chunk.end(), {0, 0, 0, 0, 0});  // end of keyword, not compressed, method, no language, no translation
  chunk.insert(chunk.end(), text.begin(), text.end());
  PutU32(out, static_cast<uint32_t>(chunk.size() - 4));
  out.insert(out.end(), chunk.begin(), chunk.end());
  // PNG's CRC-32 (ISO 3309) over the type and data.
  PutU32(out, av_crc(av_crc_get_table(AV_CRC_32_IEEE_LE), 0xffffffffu, chunk.data(), chunk.size()) ^ 0xffffffffu);
}

// Encodes RGB24 images of one size to PNG bytes, with the video's title and provenance as text
// chunks ("Title", "Comment": the keywords PNG registers for them) when it has them.
class PngEncoder {
 public:
  ~PngEncoder() {
    av_packet_free(&packet_);
    av_frame_free(&frame_);
    avcodec_free_context(&encoder_);
  }

  Status open(int width, int height, const VideoFormat& metadata) {
    if (!metadata.title.empty()) text_.emplace_back("Title", metadata.title);
    if (!metadata.provenance.empty()) text_.emplace_back("Comment", metadata.provenance);
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

  // The bytes stay valid until the next call.
  Status encode(const uint8_t* rgb, const std::string& what, const std::vector<uint8_t>*& out) {
    av_packet_unref(packet_);
    // Not reference-counted: the encoder reads it during the call and keeps nothing.
    frame_->data[0] = const_cast<uint8_t*>(rgb);
    frame_->pts = pts_++;
    int err = avcodec_send_frame(encoder_, frame_);
    if (err >= 0) err = avcodec_receive_packet(encoder_, packet_);
    if (err < 0) return Status::error(av_error(fmt::format("{}: PNG encoder failed", what), err));
    const auto size = static_cast<size_t>(packet_->size);
    if (size < kSignatureAndHeader) return fail("{}: the PNG encoder wrote {} bytes", what, size);
    bytes_.assign(packet_->data, packet_->data + kSignatureAndHeader);
    for (const auto& [keyword, text] : text_) PutTextChunk(bytes_, keyword, text);
    bytes_.insert(bytes_.end(), packet_->data + kSignatureAndHeader, packet_->data + size);
    out = &bytes_;
    return {};
  }

 private:
  AVCodecContext* encoder_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* packet_ = nullptr;
  int64_t pts_ = 0;
  std::vector<std::pair<std::string, std::string>> text_;
  std::vector<uint8_t> bytes_;
};

class PngWriter final : public FrameWriter {
 public:
  explicit PngWriter(std::unique_ptr<OutputDir> dir) : dir_(std::move(dir)) {}

  Status begin(const VideoFormat& format) override { return png_.open(format.width, format.height, format); }

  Status write(const uint8_t* rgb) override {
    const std::string name = frame_file_name(index_++);
    const std::vector<uint8_t>* png = nullptr;
    if (Status s = png_.encode(rgb, dir_->path() + "/" + name, png); !s.ok()) return s;
    return dir_->write_file(name, png->data(), png->size());
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
    return png_.open(strip_width_, format.height, format);
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
    const std::vector<uint8_t>* png = nullptr;
    if (Status s = png_.encode(strip_.data(), file_->path(), png); !s.ok()) return s;
    return file_->write(png->data(), png->size());
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
