// The demo model's frame decoder: one latent frame [C, h, w] → one RGB frame [3, 8h, 8w]
// (docs/model_format.md, "The decoder"). Frames are decoded one at a time so that each can be
// delivered as soon as it exists.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/layers.h"
#include "core/model_config.h"
#include "core/status.h"

namespace ds {

class Weights;

class FrameDecoder {
 public:
  static Result<FrameDecoder> Load(const DecoderConfig& config, int latent_channels, Weights& weights);

  // latent: one frame [C, h, w] of the DiT's normalised latent. rgb_out: [3, 8h, 8w] floats in
  // about [−1, 1].
  void Decode(Backend& be, const float* latent, int h, int w, std::vector<float>& rgb_out);
  int upsample_factor() const { return 1 << static_cast<int>(ups_.size()); }

 private:
  struct Conv {
    Tensor w, b;
  };
  int channels_ = 0;
  std::vector<int> widths_;
  Tensor mean_, std_;
  Conv conv_in_, conv_out_;
  std::vector<Conv> ups_;
  std::vector<float> a_, b_;  // ping-pong activations, sized for the largest stage
};

}  // namespace ds
