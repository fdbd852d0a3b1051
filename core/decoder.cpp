#include "core/decoder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/weights.h"

namespace ds {

Result<FrameDecoder> FrameDecoder::Load(const DecoderConfig& config, int latent_channels, Weights& weights) {
  if (config.channels.size() < 2) {
    return Error(Code::kModel, "decoder.channels needs at least two entries, got {}", config.channels.size());
  }
  FrameDecoder dec;
  dec.channels_ = latent_channels;
  dec.widths_ = config.channels;
  WeightReader r(weights);
  dec.mean_ = r.tensor("decoder.latent_mean", {latent_channels});
  dec.std_ = r.tensor("decoder.latent_std", {latent_channels});
  const auto& ch = config.channels;
  dec.conv_in_ = {r.tensor("decoder.conv_in.weight", {ch[0], latent_channels, 3, 3}),
                  r.tensor("decoder.conv_in.bias", {ch[0]})};
  for (size_t j = 1; j < ch.size(); ++j) {
    const std::string p = "decoder.up." + std::to_string(j - 1);
    dec.ups_.push_back({r.tensor(p + ".weight", {ch[j], ch[j - 1], 3, 3}), r.tensor(p + ".bias", {ch[j]})});
  }
  dec.conv_out_ = {r.tensor("decoder.conv_out.weight", {3, ch.back(), 3, 3}), r.tensor("decoder.conv_out.bias", {3})};
  DS_TRY(r.status());
  return dec;
}

void FrameDecoder::Decode(Backend& be, const float* latent, int h, int w, std::vector<float>& rgb_out) {
  const int up = upsample_factor();
  size_t largest = static_cast<size_t>(channels_) * h * w;
  for (size_t j = 0; j < widths_.size(); ++j) {
    const size_t side = static_cast<size_t>(1) << j;
    largest = std::max(largest, static_cast<size_t>(widths_[j]) * h * side * w * side * 4);
  }
  // Each on its own: when the second resize throws, the next call must not find the first one big
  // enough and skip the second.
  if (a_.size() < largest) a_.resize(largest);
  if (b_.size() < largest) b_.resize(largest);
  const int C = channels_;
  for (int c = 0; c < C; ++c) {
    const float s = std_.f32()[c], m = mean_.f32()[c];
    for (int i = 0; i < h * w; ++i)
      a_[static_cast<size_t>(c) * h * w + i] = latent[static_cast<size_t>(c) * h * w + i] * s + m;
  }
  int ch = C, hh = h, ww = w;
  auto conv = [&](const Conv& k, std::vector<float>& src, std::vector<float>& dst, bool act) {
    const int out = static_cast<int>(k.w.shape[0]);
    Tensor x = Tensor::View(src.data(), DType::kF32, {ch, hh, ww});
    Tensor y = Tensor::View(dst.data(), DType::kF32, {out, hh, ww});
    be.conv3x3(x, k.w, k.b, y);
    if (act) be.silu(y);
    ch = out;
  };
  conv(conv_in_, a_, b_, true);
  for (const Conv& k : ups_) {
    Tensor x = Tensor::View(b_.data(), DType::kF32, {ch, hh, ww});
    Tensor y = Tensor::View(a_.data(), DType::kF32, {ch, 2 * hh, 2 * ww});
    be.upsample_nearest2x(x, y);
    hh *= 2;
    ww *= 2;
    conv(k, a_, b_, true);
  }
  rgb_out.resize(static_cast<size_t>(3) * h * up * w * up);
  conv(conv_out_, b_, a_, false);
  std::copy_n(a_.begin(), rgb_out.size(), rgb_out.begin());
}

}  // namespace ds
