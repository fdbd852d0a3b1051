#include "core/wan/wan_vae_tiling.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace ds {
namespace {

// A seam kept for blending: per video frame, 3 planes of rows x cols taken from a processed tile.
struct Seam {
  int rows = 0, cols = 0;
  std::vector<float> data;

  void Reset(int frames, int r, int c) {
    rows = r;
    cols = c;
    data.resize(static_cast<size_t>(frames) * 3 * r * c);
  }
  float* frame(int f) { return data.data() + static_cast<size_t>(f) * 3 * rows * cols; }
};

// diffusers' blend: a·(1 − i/e) + b·(i/e), the weights computed in double by Python and applied in
// float32 by torch, product by product.
float Blend(float a, float b, int i, int e) {
  const double t = static_cast<double>(i) / e;
  const float wa = static_cast<float>(1.0 - t), wb = static_cast<float>(t);
  const float pa = a * wa, pb = b * wb;
  return pa + pb;
}

// One tile being decoded: its frames [3, th, tw] blended with the seams of the processed tiles above
// and to the left, its own seams kept for the tiles below and to the right, its share of the video
// written.
struct TileFrame {
  int th, tw;          // tile size in pixels
  int y0, x0;          // its origin in the video
  int keep_h, keep_w;  // the part it contributes: stride x stride, or less at the bottom/right edge

  void BlendAbove(Seam& above, int f, float* tile) const {
    const int e = std::min(above.rows, th);
    const float* a = above.frame(f);
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < e; ++y) {
        const float* ar = a + (static_cast<size_t>(c) * above.rows + above.rows - e + y) * tw;
        float* br = tile + (static_cast<size_t>(c) * th + y) * tw;
        for (int x = 0; x < tw; ++x) br[x] = Blend(ar[x], br[x], y, e);
      }
    }
  }
  void BlendLeft(Seam& left, int f, float* tile) const {
    const int e = std::min(left.cols, tw);
    const float* a = left.frame(f);
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < th; ++y) {
        const float* ar = a + (static_cast<size_t>(c) * th + y) * left.cols + left.cols - e;
        float* br = tile + (static_cast<size_t>(c) * th + y) * tw;
        for (int x = 0; x < e; ++x) br[x] = Blend(ar[x], br[x], x, e);
      }
    }
  }
  void KeepSeams(const float* tile, int f, Seam& below, Seam& right) const {
    float* b = below.frame(f);
    float* r = right.frame(f);
    for (int c = 0; c < 3; ++c) {
      const float* plane = tile + static_cast<size_t>(c) * th * tw;
      std::memcpy(b + static_cast<size_t>(c) * below.rows * tw, plane + static_cast<size_t>(th - below.rows) * tw,
                  static_cast<size_t>(below.rows) * tw * sizeof(float));
      for (int y = 0; y < th; ++y) {
        std::memcpy(r + (static_cast<size_t>(c) * th + y) * right.cols,
                    plane + static_cast<size_t>(y) * tw + tw - right.cols,
                    static_cast<size_t>(right.cols) * sizeof(float));
      }
    }
  }
  void Write(const float* tile, int H, int W, float* video_frame) const {
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < keep_h; ++y) {
        const float* src = tile + (static_cast<size_t>(c) * th + y) * tw;
        float* dst = video_frame + (static_cast<size_t>(c) * H + y0 + y) * W + x0;
        for (int x = 0; x < keep_w; ++x) dst[x] = std::clamp(src[x], -1.0f, 1.0f);
      }
    }
  }
};

int LargestSpan(const std::vector<TileSpan>& spans) {
  int n = 0;
  for (const TileSpan& s : spans) n = std::max(n, s.size);
  return n;
}

}  // namespace

std::vector<TileSpan> TileSpans(int extent, int tile, int stride) {
  std::vector<TileSpan> spans;
  if (extent <= 0 || tile <= 0 || stride <= 0) return spans;
  for (int start = 0; start < extent; start += stride) spans.push_back({start, std::min(tile, extent - start)});
  return spans;
}

Status CheckVaeTiles(const VaeTiles& t, int spatial_factor) {
  const std::pair<const char*, int> sizes[] = {{"min_height", t.min_height},
                                               {"stride_height", t.stride_height},
                                               {"min_width", t.min_width},
                                               {"stride_width", t.stride_width}};
  for (const auto& [name, v] : sizes) {
    if (v <= 0 || v % spatial_factor != 0) {
      return Error(Code::kInvalidArgument, "VAE tiles: {} = {} is not a positive multiple of {}", name, v,
                   spatial_factor);
    }
  }
  if (t.stride_height > t.min_height || t.stride_width > t.min_width) {
    return Error(Code::kInvalidArgument, "VAE tiles: a stride ({} x {}) exceeds its tile ({} x {}), leaving gaps",
                 t.stride_width, t.stride_height, t.min_width, t.min_height);
  }
  return Status::Ok();
}

bool VaeTilingApplies(const VaeTiles& t, int spatial_factor, int h, int w) {
  return w > t.min_width / spatial_factor || h > t.min_height / spatial_factor;
}

size_t VaeTiledWorkingSetBytes(const WanVaeDecoder& vae, const VaeTiles& t, int T, int h, int w) {
  const int s = vae.config().spatial_factor();
  const int th = LargestSpan(TileSpans(h, t.min_height / s, t.stride_height / s));
  const int tw = LargestSpan(TileSpans(w, t.min_width / s, t.stride_width / s));
  const size_t frames = static_cast<size_t>(vae.OutputFrames(T));
  const size_t video = frames * 3 * static_cast<size_t>(h) * w * s * s;
  // Seams below the tiles of two rows (the one read, the one written) and right of two tiles.
  const size_t seams = 2 * frames * 3 *
                       (static_cast<size_t>(t.min_height - t.stride_height) * w * s +
                        static_cast<size_t>(th) * s * (t.min_width - t.stride_width));
  const size_t tile = 3 * static_cast<size_t>(th) * tw * s * s + static_cast<size_t>(vae.config().z_dim) * th * tw;
  return vae.WorkingSetBytes(th, tw) + (video + seams + tile) * sizeof(float);
}

Status DecodeTiled(WanVaeDecoder& vae, Backend& be, const VaeTiles& tiles, const float* z, int T, int h, int w,
                   const VaeTileTickFn& tick, const WanVaeDecoder::FrameFn& on_frame) {
  const int s = vae.config().spatial_factor(), C = vae.config().z_dim;
  DS_TRY(CheckVaeTiles(tiles, s));
  if (T <= 0 || h <= 0 || w <= 0) {
    return Error(Code::kInvalidArgument, "VAE tiles: latent {} x {} x {} frames is empty", w, h, T);
  }
  const int blend_h = tiles.min_height - tiles.stride_height, blend_w = tiles.min_width - tiles.stride_width;
  const std::vector<TileSpan> rows = TileSpans(h, tiles.min_height / s, tiles.stride_height / s);
  const std::vector<TileSpan> cols = TileSpans(w, tiles.min_width / s, tiles.stride_width / s);
  const int F = vae.OutputFrames(T), H = h * s, W = w * s;
  const size_t frame_floats = 3 * static_cast<size_t>(H) * W;
  std::vector<float> video(static_cast<size_t>(F) * frame_floats), crop, tile;
  // above[j]: the bottom seam of the processed tile in column j of the previous row; below[j]: this
  // row's, written as its frames are decoded. left/right likewise along a row.
  std::vector<Seam> above(cols.size()), below(cols.size());
  Seam left, right;
  const int total = static_cast<int>(rows.size() * cols.size()) * F;
  int done = 0;
  Status status = Status::Ok();
  for (size_t ri = 0; ri < rows.size() && status.ok(); ++ri) {
    for (size_t ci = 0; ci < cols.size() && status.ok(); ++ci) {
      const TileSpan tr = rows[ri], tc = cols[ci];
      const TileFrame geo{tr.size * s,
                          tc.size * s,
                          tr.start * s,
                          tc.start * s,
                          std::min(tiles.stride_height, tr.size * s),
                          std::min(tiles.stride_width, tc.size * s)};
      const bool last = ri + 1 == rows.size() && ci + 1 == cols.size();
      below[ci].Reset(F, std::min(geo.th, blend_h), geo.tw);
      right.Reset(F, geo.th, std::min(geo.tw, blend_w));
      crop.resize(static_cast<size_t>(C) * tr.size * tc.size);
      tile.resize(3 * static_cast<size_t>(geo.th) * geo.tw);
      status = vae.Begin(be, tr.size, tc.size, WanVaeDecoder::Range::kRaw);
      int f = 0;
      for (int k = 0; k < T && status.ok(); ++k) {
        for (int ch = 0; ch < C; ++ch) {
          for (int y = 0; y < tr.size; ++y) {
            const float* src = z + ((static_cast<size_t>(ch) * T + k) * h + tr.start + y) * w + tc.start;
            std::copy_n(src, tc.size, crop.data() + (static_cast<size_t>(ch) * tr.size + y) * tc.size);
          }
        }
        status = vae.Push(be, crop.data(), [&](const float* rgb) -> Status {
          std::copy_n(rgb, tile.size(), tile.data());
          if (ri > 0) geo.BlendAbove(above[ci], f, tile.data());
          if (ci > 0) geo.BlendLeft(left, f, tile.data());
          geo.KeepSeams(tile.data(), f, below[ci], right);
          float* frame = video.data() + static_cast<size_t>(f) * frame_floats;
          geo.Write(tile.data(), H, W, frame);
          ++f;
          DS_TRY(tick(++done, total));
          // Every other tile has been through all frames: this frame of the video is complete.
          return last ? on_frame(frame) : Status::Ok();
        });
      }
      std::swap(left, right);
    }
    std::swap(above, below);
  }
  vae.End();
  return status;
}

}  // namespace ds
