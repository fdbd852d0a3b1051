#include "core/wan/wan_vae.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>

#include "core/config.h"
#include "core/layers.h"
#include "core/wan/wan_weights.h"
#include "core/weights.h"

namespace ds {
namespace {

// dst[c·dst_ld + r] = src[r·src_ld + c] for r < rows, c < cols: the pixel-major ↔ channel-major
// switches around the convolutions, in cache-sized tiles.
void Transpose(const float* src, int64_t rows, int64_t cols, int64_t src_ld, float* dst, int64_t dst_ld) {
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) dst[c * dst_ld + r] = src[r * src_ld + c];
    }
  }
}

// WanRMS_norm is x / max(‖x‖₂, 1e-12) · sqrt(C) · γ = x / sqrt(mean(x²)) · γ over the channels, i.e.
// Backend::rms_norm with an epsilon that plays the role of the 1e-12 clamp on ‖x‖₂.
float ChannelNormEps(int64_t channels) { return 1e-24f / static_cast<float>(channels); }

Tensor Vec(float* p, int64_t n) { return Tensor::View(p, DType::kF32, {n}); }

void Ensure(std::vector<float>& buf, size_t size) {
  if (buf.size() < size) buf.resize(size);
}

void Free(std::vector<float>& buf) { std::vector<float>().swap(buf); }

size_t Bytes(const std::vector<float>& buf) { return buf.capacity() * sizeof(float); }

// A 3x3x3 causal conv (pad 1 in H and W, 2 frames of history in front) with its history.
struct CausalConv3 {
  Tensor w, b;  // w: the [O, C, 3, 3, 3] weight read as [O, 3C, 3, 3]
  int64_t c_in = 0, c_out = 0, plane = 0;
  int h = 0, wd = 0;
  std::vector<float> hist;  // [C, 3, plane]: per channel the frames t−2, t−1, t

  void Reset(int height, int width) {
    h = height;
    wd = width;
    plane = static_cast<int64_t>(height) * width;
    hist.assign(static_cast<size_t>(c_in * 3 * plane), 0.0f);
  }
  // Shifts the history by one frame and appends x (pixel-major [plane, c_in], rows ld apart).
  void Append(const float* x, int64_t ld) {
    for (int64_t c = 0; c < c_in; ++c) {
      float* ch = hist.data() + c * 3 * plane;
      std::memmove(ch, ch + plane, static_cast<size_t>(2 * plane) * sizeof(float));
    }
    Transpose(x, plane, c_in, ld, hist.data() + 2 * plane, 3 * plane);
  }
  void Release() { Free(hist); }
  size_t Held() const { return Bytes(hist); }
  // y: channel-major [c_out, plane].
  void Run(Backend& be, const float* x, int64_t ld, float* y) {
    Append(x, ld);
    Tensor yt = Tensor::View(y, DType::kF32, {c_out, h, wd});
    be.conv3x3(Tensor::View(hist.data(), DType::kF32, {3 * c_in, h, wd}), w, b, yt);
  }
};

// Activations and scratch of the residual blocks, one set for all resolutions: a level's frame is
// dead once its upsampler has read it (into buffers of its own), before the next level runs.
struct Scratch {
  int64_t plane = 0;  // of the level running now
  std::vector<float> a, b, t, t2, ycm;
};

struct ResBlock {
  int64_t c_in = 0, c_out = 0;
  Tensor g1, g2;
  CausalConv3 conv1, conv2;
  std::optional<Linear> shortcut;  // 1x1x1 conv when the width changes

  void Release() {
    conv1.Release();
    conv2.Release();
  }
  size_t Held() const { return conv1.Held() + conv2.Held(); }

  // x [plane, c_in] → out [plane, c_out], both pixel-major.
  void Run(Backend& be, Scratch& s, const float* x, float* out) {
    const int64_t p = s.plane;
    Tensor xo = Mat(out, p, c_out);
    if (shortcut) {
      (*shortcut)(be, Mat(const_cast<float*>(x), p, c_in), xo);
    } else {
      std::copy_n(x, p * c_in, out);
    }
    std::copy_n(x, p * c_in, s.t.data());
    Tensor t = Mat(s.t.data(), p, c_in);
    be.rms_norm(t, g1, ChannelNormEps(c_in));
    be.silu(t);
    conv1.Run(be, s.t.data(), c_in, s.ycm.data());
    Transpose(s.ycm.data(), c_out, p, p, s.t.data(), c_out);
    Tensor t2 = Mat(s.t.data(), p, c_out);
    be.rms_norm(t2, g2, ChannelNormEps(c_out));
    be.silu(t2);
    conv2.Run(be, s.t.data(), c_out, s.ycm.data());
    Transpose(s.ycm.data(), c_out, p, p, s.t2.data(), c_out);
    be.add(xo, Mat(s.t2.data(), p, c_out));
  }
};

// Single-head self-attention over the pixels of one frame.
struct AttnBlock {
  int64_t c = 0;
  Tensor gamma;
  Linear qkv, proj;
  std::vector<float> n, q, o, f;

  void Release() {
    for (auto* buf : {&n, &q, &o, &f}) Free(*buf);
  }
  size_t Held() const { return Bytes(n) + Bytes(q) + Bytes(o) + Bytes(f); }
  void Run(Backend& be, int64_t plane, float* x) {
    Ensure(n, plane * c);
    Ensure(q, plane * 3 * c);
    Ensure(o, plane * c);
    Ensure(f, plane * c);
    std::copy_n(x, plane * c, n.data());
    Tensor nt = Mat(n.data(), plane, c), qt = Mat(q.data(), plane, 3 * c);
    be.rms_norm(nt, gamma, ChannelNormEps(c));
    qkv(be, nt, qt);
    auto part = [&](int i) {
      Tensor t = Tensor::View(q.data() + i * c, DType::kF32, {plane, 1, c});
      t.strides[0] = 3 * c * static_cast<int64_t>(sizeof(float));
      return t;
    };
    Tensor oh = Tensor::View(o.data(), DType::kF32, {plane, 1, c});
    be.attention(part(0), part(1), part(2), 1.0f / std::sqrt(static_cast<float>(c)), oh);
    Tensor ft = Mat(f.data(), plane, c), xt = Mat(x, plane, c);
    proj(be, Mat(o.data(), plane, c), ft);
    be.add(xt, ft);
  }
};

// Nearest 2x upsampling + 3x3 conv (c → c/2) per frame, preceded for 'upsample3d' by a causal
// (3,1,1) conv (c → 2c) that turns each frame into two, except the very first frame of a video.
struct Resample {
  int64_t c = 0;
  bool temporal = false, first = true;
  Tensor conv_w, conv_b;  // [c/2, c, 3, 3]
  Tensor tc_w, tc_b;      // time_conv [2c, c, 3, 1, 1] read as [2c, 3c]
  int h = 0, w = 0;
  int64_t plane = 0;
  std::vector<float> hist, x3, y, cm, up, conv, out;

  void Reset(int height, int width) {
    h = height;
    w = width;
    plane = static_cast<int64_t>(height) * width;
    first = true;
    if (temporal) {
      hist.assign(static_cast<size_t>(c * 3 * plane), 0.0f);
      Ensure(x3, plane * 3 * c);
      Ensure(y, plane * 2 * c);
    }
    Ensure(cm, plane * c);
    Ensure(up, 4 * plane * c);
    Ensure(conv, 4 * plane * (c / 2));
    Ensure(out, 4 * plane * (c / 2));
  }

  void Release() {
    for (auto* buf : {&hist, &x3, &y, &cm, &up, &conv, &out}) Free(*buf);
  }
  size_t Held() const {
    size_t n = 0;
    for (const auto* buf : {&hist, &x3, &y, &cm, &up, &conv, &out}) n += Bytes(*buf);
    return n;
  }

  template <typename Emit>
  Status Run(Backend& be, const float* x, const Emit& emit) {
    if (!temporal || first) {
      first = false;
      return Spatial(be, x, c, emit);
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      float* p = hist.data() + ch * 3 * plane;
      std::memmove(p, p + plane, static_cast<size_t>(2 * plane) * sizeof(float));
    }
    Transpose(x, plane, c, c, hist.data() + 2 * plane, 3 * plane);
    Transpose(hist.data(), 3 * c, plane, plane, x3.data(), 3 * c);
    Tensor yt = Mat(y.data(), plane, 2 * c);
    be.linear(Mat(x3.data(), plane, 3 * c), tc_w, &tc_b, yt);
    // Output channels [0, c) are the earlier frame, [c, 2c) the later one.
    DS_TRY(Spatial(be, y.data(), 2 * c, emit));
    return Spatial(be, y.data() + c, 2 * c, emit);
  }

  template <typename Emit>
  Status Spatial(Backend& be, const float* x, int64_t ld, const Emit& emit) {
    Transpose(x, plane, c, ld, cm.data(), plane);
    Tensor upt = Tensor::View(up.data(), DType::kF32, {c, 2 * h, 2 * w});
    be.upsample_nearest2x(Tensor::View(cm.data(), DType::kF32, {c, h, w}), upt);
    Tensor ct = Tensor::View(conv.data(), DType::kF32, {c / 2, 2 * h, 2 * w});
    be.conv3x3(upt, conv_w, conv_b, ct);
    Transpose(conv.data(), c / 2, 4 * plane, 4 * plane, out.data(), c / 2);
    return emit(out.data());
  }
};

struct UpBlock {
  std::vector<ResBlock> res;
  std::optional<Resample> up;
};

}  // namespace

struct WanVaeDecoder::Impl {
  Linear post_quant;  // 1x1x1 conv z → z
  CausalConv3 conv_in;
  ResBlock mid0, mid1;
  AttnBlock mid_attn;
  std::vector<UpBlock> ups;
  Tensor norm_out;
  CausalConv3 conv_out;

  int h = 0, w = 0;
  bool clamp = true;
  int64_t top_plane = 0;              // latent resolution: conv_in and the middle block
  std::vector<int64_t> level_planes;  // one per up block
  Scratch scratch;
  std::vector<float> zin, zq, rgb;

  Status RunUp(Backend& be, size_t i, const float* x, const FrameFn& on_frame);
  Status Head(Backend& be, const float* x, const FrameFn& on_frame);
};

WanVaeDecoder::WanVaeDecoder() : impl_(std::make_unique<Impl>()) {}
WanVaeDecoder::WanVaeDecoder(WanVaeDecoder&&) noexcept = default;
WanVaeDecoder& WanVaeDecoder::operator=(WanVaeDecoder&&) noexcept = default;
WanVaeDecoder::~WanVaeDecoder() = default;

namespace {

Tensor Gamma(WanTensorReader& r, const std::string& name, int64_t c, bool image) {
  Tensor g = image ? r.get(name, {c, 1, 1}) : r.get(name, {c, 1, 1, 1});
  return r.status().ok() ? Vec(g.f32(), c) : Tensor{};
}

CausalConv3 LoadConv3(WanTensorReader& r, const std::string& name, int64_t c_in, int64_t c_out) {
  CausalConv3 conv;
  conv.c_in = c_in;
  conv.c_out = c_out;
  Tensor w = r.get(name + ".weight", {c_out, c_in, 3, 3, 3});
  conv.b = r.get(name + ".bias", {c_out});
  if (r.status().ok()) conv.w = Tensor::View(w.f32(), DType::kF32, {c_out, 3 * c_in, 3, 3});
  return conv;
}

Linear LoadPointwise(WanTensorReader& r, const std::string& name, std::vector<int64_t> shape) {
  Linear l;
  Tensor w = r.get(name + ".weight", shape);
  l.b = r.get(name + ".bias", {shape[0]});
  if (r.status().ok()) l.w = Mat(w.f32(), shape[0], shape[1]);
  return l;
}

ResBlock LoadRes(WanTensorReader& r, const std::string& p, int64_t c_in, int64_t c_out) {
  ResBlock b;
  b.c_in = c_in;
  b.c_out = c_out;
  b.g1 = Gamma(r, p + ".norm1.gamma", c_in, false);
  b.conv1 = LoadConv3(r, p + ".conv1", c_in, c_out);
  b.g2 = Gamma(r, p + ".norm2.gamma", c_out, false);
  b.conv2 = LoadConv3(r, p + ".conv2", c_out, c_out);
  if (c_in != c_out) b.shortcut = LoadPointwise(r, p + ".conv_shortcut", {c_out, c_in, 1, 1, 1});
  return b;
}

}  // namespace

Result<WanVaeDecoder> WanVaeDecoder::Load(const std::string& path) {
  namespace fs = std::filesystem;
  WanVaeDecoder d;
  DS_ASSIGN_OR_RETURN(d.weights_, OpenWanWeights(path, "VAE"));
  DS_ASSIGN_OR_RETURN(WanCheckpointNaming naming, DetectWanVaeNaming(*d.weights_));
  if (naming.naming == WanNaming::kDiffusers) {
    std::error_code ec;
    const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
    DS_ASSIGN_OR_RETURN(Config c, Config::Load((dir / "config.json").string()));
    DS_ASSIGN_OR_RETURN(d.cfg_, ParseWanVaeConfig(c));
  } else {
    DS_ASSIGN_OR_RETURN(d.cfg_, WanVaeConfigFromShapes(*d.weights_));
  }
  const WanVaeConfig& c = d.cfg_;
  const std::vector<int> dims = c.decoder_dims();
  for (size_t i = 1; i + 1 < dims.size(); ++i) {
    if (dims[i + 1] % 2 != 0) return Error(Code::kModel, "{}: VAE widths must be even to upsample", path);
  }
  const int64_t z = c.z_dim;
  Impl& m = *d.impl_;
  WanTensorReader r(*d.weights_, naming, WanVaeOriginalName);
  m.post_quant = LoadPointwise(r, "post_quant_conv", {z, z, 1, 1, 1});
  m.conv_in = LoadConv3(r, "decoder.conv_in", z, dims[0]);
  m.mid0 = LoadRes(r, "decoder.mid_block.resnets.0", dims[0], dims[0]);
  m.mid1 = LoadRes(r, "decoder.mid_block.resnets.1", dims[0], dims[0]);
  m.mid_attn.c = dims[0];
  m.mid_attn.gamma = Gamma(r, "decoder.mid_block.attentions.0.norm.gamma", dims[0], true);
  m.mid_attn.qkv = LoadPointwise(r, "decoder.mid_block.attentions.0.to_qkv", {3 * dims[0], dims[0], 1, 1});
  m.mid_attn.proj = LoadPointwise(r, "decoder.mid_block.attentions.0.proj", {dims[0], dims[0], 1, 1});
  const size_t blocks = c.dim_mult.size();
  m.ups.resize(blocks);
  for (size_t i = 0; i < blocks; ++i) {
    const int64_t in = dims[i] / (i > 0 ? 2 : 1), out = dims[i + 1];
    const std::string p = "decoder.up_blocks." + std::to_string(i);
    UpBlock& ub = m.ups[i];
    for (int j = 0; j <= c.num_res_blocks; ++j) {
      ub.res.push_back(LoadRes(r, p + ".resnets." + std::to_string(j), j == 0 ? in : out, out));
    }
    if (i + 1 == blocks) continue;
    Resample& s = ub.up.emplace();
    s.c = out;
    s.temporal = c.temporal_downsample[c.temporal_downsample.size() - 1 - i];
    Tensor cw = r.get(p + ".upsamplers.0.resample.1.weight", {out / 2, out, 3, 3});
    s.conv_b = r.get(p + ".upsamplers.0.resample.1.bias", {out / 2});
    if (r.status().ok()) s.conv_w = cw;
    if (s.temporal) {
      Tensor tw = r.get(p + ".upsamplers.0.time_conv.weight", {2 * out, out, 3, 1, 1});
      s.tc_b = r.get(p + ".upsamplers.0.time_conv.bias", {2 * out});
      if (r.status().ok()) s.tc_w = Mat(tw.f32(), 2 * out, 3 * out);
    }
  }
  m.norm_out = Gamma(r, "decoder.norm_out.gamma", dims.back(), false);
  m.conv_out = LoadConv3(r, "decoder.conv_out", dims.back(), c.out_channels);
  DS_TRY(r.status());
  // The encoder (and its quant_conv, 'conv1' in the original names) is not needed for text-to-video.
  WarnUnusedWanTensors(*d.weights_, "VAE decoder",
                       {"encoder.", "quant_conv.", naming.naming == WanNaming::kOriginal ? "conv1." : "quant_conv."});
  return d;
}

int WanVaeDecoder::OutputFrames(int latent_frames) const {
  return latent_frames <= 0 ? 0 : 1 + cfg_.temporal_factor() * (latent_frames - 1);
}

void WanVaeDecoder::Denormalize(float* latent, int64_t plane) const {
  for (int ch = 0; ch < cfg_.z_dim; ++ch) {
    const float inv_std = 1.0f / cfg_.latents_std[ch], mean = cfg_.latents_mean[ch];
    float* p = latent + ch * plane;
    for (int64_t i = 0; i < plane; ++i) p[i] = p[i] / inv_std + mean;
  }
}

Status WanVaeDecoder::Begin(int h, int w, Range range) {
  if (h <= 0 || w <= 0) return Error(Code::kInvalidArgument, "VAE: latent size {}x{} is not positive", w, h);
  Impl& m = *impl_;
  m.h = h;
  m.w = w;
  m.clamp = range == Range::kClamped;
  const int64_t plane = static_cast<int64_t>(h) * w, z = cfg_.z_dim;
  const std::vector<int> dims = cfg_.decoder_dims();
  size_t scratch = static_cast<size_t>(plane) * dims[0];
  m.top_plane = plane;
  Ensure(m.zin, plane * z);
  Ensure(m.zq, plane * z);
  m.conv_in.Reset(h, w);
  for (ResBlock* b : {&m.mid0, &m.mid1}) {
    b->conv1.Reset(h, w);
    b->conv2.Reset(h, w);
  }
  m.level_planes.resize(m.ups.size());
  int lh = h, lw = w;
  for (size_t i = 0; i < m.ups.size(); ++i) {
    UpBlock& ub = m.ups[i];
    m.level_planes[i] = static_cast<int64_t>(lh) * lw;
    for (ResBlock& b : ub.res) {
      b.conv1.Reset(lh, lw);
      b.conv2.Reset(lh, lw);
      scratch = std::max(scratch, static_cast<size_t>(m.level_planes[i] * std::max(b.c_in, b.c_out)));
    }
    if (ub.up) {
      ub.up->Reset(lh, lw);
      lh *= 2;
      lw *= 2;
    }
  }
  for (auto* buf : {&m.scratch.a, &m.scratch.b, &m.scratch.t, &m.scratch.t2, &m.scratch.ycm}) Ensure(*buf, scratch);
  m.conv_out.Reset(lh, lw);
  Ensure(m.rgb, static_cast<size_t>(cfg_.out_channels) * lh * lw);
  return Status::Ok();
}

void WanVaeDecoder::End() {
  Impl& m = *impl_;
  m.conv_in.Release();
  m.mid0.Release();
  m.mid1.Release();
  m.mid_attn.Release();
  for (UpBlock& ub : m.ups) {
    for (ResBlock& b : ub.res) b.Release();
    if (ub.up) ub.up->Release();
  }
  m.conv_out.Release();
  for (auto* buf : {&m.scratch.a, &m.scratch.b, &m.scratch.t, &m.scratch.t2, &m.scratch.ycm, &m.zin, &m.zq, &m.rgb}) {
    Free(*buf);
  }
  m.h = m.w = 0;
}

// Mirrors what Begin and the first Push allocate (a test holds the two to AllocatedBytes).
size_t WanVaeDecoder::WorkingSetBytes(int h, int w) const {
  const Impl& m = *impl_;
  const int64_t plane = static_cast<int64_t>(h) * w, z = cfg_.z_dim, d0 = m.conv_in.c_out;
  auto conv = [](const CausalConv3& c, int64_t p) { return c.c_in * 3 * p; };
  int64_t floats = 2 * plane * z + conv(m.conv_in, plane) + 6 * plane * d0;  // zin, zq, conv_in, attention
  for (const ResBlock* b : {&m.mid0, &m.mid1}) floats += conv(b->conv1, plane) + conv(b->conv2, plane);
  int64_t scratch = plane * d0, p = plane;
  for (const UpBlock& ub : m.ups) {
    for (const ResBlock& b : ub.res) {
      floats += conv(b.conv1, p) + conv(b.conv2, p);
      scratch = std::max(scratch, p * std::max(b.c_in, b.c_out));
    }
    if (ub.up) {
      const int64_t c = ub.up->c;
      if (ub.up->temporal) floats += c * 3 * p + p * 3 * c + p * 2 * c;  // hist, x3, y
      floats += p * c + 4 * p * c + 2 * (4 * p * (c / 2));               // cm, up, conv, out
      p *= 4;
    }
  }
  floats += 5 * scratch + conv(m.conv_out, p) + static_cast<int64_t>(cfg_.out_channels) * p;
  return static_cast<size_t>(floats) * sizeof(float);
}

size_t WanVaeDecoder::AllocatedBytes() const {
  const Impl& m = *impl_;
  size_t n = m.conv_in.Held() + m.mid0.Held() + m.mid1.Held() + m.mid_attn.Held() + m.conv_out.Held();
  for (const UpBlock& ub : m.ups) {
    for (const ResBlock& b : ub.res) n += b.Held();
    if (ub.up) n += ub.up->Held();
  }
  for (const auto* buf :
       {&m.scratch.a, &m.scratch.b, &m.scratch.t, &m.scratch.t2, &m.scratch.ycm, &m.zin, &m.zq, &m.rgb}) {
    n += Bytes(*buf);
  }
  return n;
}

Status WanVaeDecoder::Push(Backend& be, const float* zf, const FrameFn& on_frame) {
  Impl& m = *impl_;
  if (m.h == 0) return Error(Code::kState, "VAE: Push before Begin");
  Scratch& sc = m.scratch;
  const int64_t p = m.top_plane, z = cfg_.z_dim, d0 = m.conv_in.c_out;
  sc.plane = p;
  Transpose(zf, z, p, p, m.zin.data(), z);
  Tensor zq = Mat(m.zq.data(), p, z);
  m.post_quant(be, Mat(m.zin.data(), p, z), zq);
  m.conv_in.Run(be, m.zq.data(), z, sc.ycm.data());
  // The frame moves between a and b; the residual blocks use t, t2 and ycm.
  Transpose(sc.ycm.data(), d0, p, p, sc.b.data(), d0);
  m.mid0.Run(be, sc, sc.b.data(), sc.a.data());
  m.mid_attn.Run(be, p, sc.a.data());
  m.mid1.Run(be, sc, sc.a.data(), sc.b.data());
  return m.RunUp(be, 0, sc.b.data(), on_frame);
}

Status WanVaeDecoder::Impl::RunUp(Backend& be, size_t i, const float* x, const FrameFn& on_frame) {
  UpBlock& ub = ups[i];
  scratch.plane = level_planes[i];
  // x is scratch.b (from the middle block) or an upsampler's own output, so writing a first is safe.
  const float* cur = x;
  float* bufs[2] = {scratch.a.data(), scratch.b.data()};
  int which = 0;
  for (ResBlock& b : ub.res) {
    b.Run(be, scratch, cur, bufs[which]);
    cur = bufs[which];
    which ^= 1;
  }
  if (!ub.up) return Head(be, cur, on_frame);
  return ub.up->Run(be, cur, [&](const float* frame) { return RunUp(be, i + 1, frame, on_frame); });
}

Status WanVaeDecoder::Impl::Head(Backend& be, const float* x, const FrameFn& on_frame) {
  const int64_t c = conv_out.c_in, p = level_planes.back();
  std::copy_n(x, p * c, scratch.t.data());
  Tensor t = Mat(scratch.t.data(), p, c);
  be.rms_norm(t, norm_out, ChannelNormEps(c));
  be.silu(t);
  conv_out.Run(be, scratch.t.data(), c, rgb.data());
  const int64_t n = conv_out.c_out * p;
  if (clamp) {
    for (int64_t i = 0; i < n; ++i) rgb[i] = std::clamp(rgb[i], -1.0f, 1.0f);
  }
  return on_frame(rgb.data());
}

}  // namespace ds
