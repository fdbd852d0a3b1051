// Spatially tiled decoding of the Wan VAE: diffusers' AutoencoderKLWan.tiled_decode, computed the
// same way (so it matches the reference with tiling enabled), for frames too large to stream.
//
// Why it exists: the streamed decoder keeps a causal cache per 3x3x3 conv at every resolution, about
// 7.7 GB of host memory at 480x832 and 17.7 GB at 720x1280, and tiles cannot shrink that while
// streaming (each tile would need its own caches, which add up to more than the whole frame's).
// Tiles decoded one after the other, each through every latent frame, bound the decoder to one
// tile's caches (about 1 GB for diffusers' 256-pixel tiles) plus the assembled video. The price:
// frames exist only once the last tile reaches them, so they come out during the last tile's pass
// rather than one by one from the start, and the overlaps cost about 1.8x the convolutions.
//
// Tiles overlap by (min − stride) pixels; each tile is blended with the processed tile above it
// (linear ramp over the rows) and then with the processed tile to its left (over the columns), and
// contributes its first stride x stride pixels; the clamp to [-1, 1] comes after blending.
#pragma once

#include <functional>
#include <vector>

#include "core/backend.h"
#include "core/status.h"
#include "core/wan/wan_vae.h"

namespace ds {

// Tile sizes in video pixels, multiples of the VAE's spatial factor; diffusers' defaults.
struct VaeTiles {
  int min_height = 256, stride_height = 192;
  int min_width = 256, stride_width = 192;
};

// One tile along one axis, in latent units: [start, start + size).
struct TileSpan {
  int start = 0, size = 0;
  bool operator==(const TileSpan&) const = default;
};
// The tiles along an axis of `extent` latent units: starts 0, stride, 2·stride, … < extent, each
// `tile` long or cut at the edge.
std::vector<TileSpan> TileSpans(int extent, int tile, int stride);

// An error naming the field unless every size is a positive multiple of `spatial_factor` and each
// stride is at most its tile.
Status CheckVaeTiles(const VaeTiles& tiles, int spatial_factor);
// diffusers tiles only when a side of the latent exceeds a tile; otherwise one tile is the frame.
bool VaeTilingApplies(const VaeTiles& tiles, int spatial_factor, int h, int w);
// Host bytes a tiled decode of T latent frames of h x w holds: the decoder at the largest tile, the
// assembled video and the seams kept for blending.
size_t VaeTiledWorkingSetBytes(const WanVaeDecoder& vae, const VaeTiles& tiles, int T, int h, int w);

// Decodes z [z_dim, T, h, w] (de-normalised) tile by tile. on_frame receives each video frame, planar
// RGB [3, 8h, 8w] clamped to [-1, 1], in order, once it is complete. tick(done, total) follows every
// tile frame decoded (total = tiles · frames); an error from either stops the decode and is returned.
using VaeTileTickFn = std::function<Status(int done, int total)>;
Status DecodeTiled(WanVaeDecoder& vae, Backend& be, const VaeTiles& tiles, const float* z, int T, int h, int w,
                   const VaeTileTickFn& tick, const WanVaeDecoder::FrameFn& on_frame);

}  // namespace ds
