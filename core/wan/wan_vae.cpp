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

// WanRMS_norm is x / max(‖x‖₂, 1e-12) · sqrt(C) · γ = x / sqrt(mean(x²)) · γ over the channels, i.e.
// Backend::rms_norm with an epsilon that plays the role of the 1e-12 clamp on ‖x‖₂.
float ChannelNormEps(int64_t channels) { return 1e-24f / static_cast<float>(channels); }

Tensor Vec(float* p, int64_t n) { return Tensor::View(p, DType::kF32, {n}); }

// Activations live in the backend's memory (device memory on a GPU), so that a frame goes through
// the decoder without host round trips. A view of `floats` from `offset` of a buffer, as [rows,
// cols] with rows `ld` apart, or as [c, h, w].
Tensor Mat(const BackendBuffer& b, int64_t rows, int64_t cols, int64_t ld = 0, int64_t offset = 0) {
  Tensor t = Tensor::View(b.tensor.f32() + offset, DType::kF32, {rows, cols}, b.tensor.device);
  if (ld > 0) t.strides[0] = ld * static_cast<int64_t>(sizeof(float));
  return t;
}
Tensor Planes(const BackendBuffer& b, int64_t c, int64_t h, int64_t w, int64_t offset = 0) {
  return Tensor::View(b.tensor.f32() + offset, DType::kF32, {c, h, w}, b.tensor.device);
}

size_t Floats(const BackendBuffer& b) { return b.tensor.data ? static_cast<size_t>(b.tensor.numel()) : 0; }

// Grows (never shrinks) a buffer to hold `floats`.
Status Ensure(Backend& be, BackendBuffer& b, int64_t floats) {
  if (static_cast<int64_t>(Floats(b)) >= floats) return Status::Ok();
  b = {};
  DS_ASSIGN_OR_RETURN(b, be.NewBuffer(DType::kF32, {floats}));
  return Status::Ok();
}
// Exactly `floats`, zeroed: a causal history before the first frame.
Status Zeroed(Backend& be, BackendBuffer& b, int64_t floats) {
  if (static_cast<int64_t>(Floats(b)) != floats) {
    b = {};
    DS_ASSIGN_OR_RETURN(b, be.NewBuffer(DType::kF32, {floats}));
  }
  return be.Zero(b.tensor);
}

// A causal 3-frame history [3 frames: t−2, t−1, t][C][plane], read by a conv as 3C channels.
// Frames enter as pixel-major [plane, C] and are stored channel-major; the weight's input channels
// are reordered at load to (frame, channel) to match.
struct History {
  int64_t c = 0, plane = 0;
  BackendBuffer buf;

  Status Reset(Backend& be, int64_t channels, int64_t p) {
    c = channels;
    plane = p;
    return Zeroed(be, buf, 3 * c * plane);
  }
  Tensor Slab(int i) const { return Mat(buf, c, plane, 0, i * c * plane); }
  // Drops the oldest frame and appends x [plane, c] (rows ld apart).
  void Push(Backend& be, const Tensor& x) {
    for (int i = 0; i < 2; ++i) {
      Tensor dst = Slab(i);
      be.copy(Slab(i + 1), dst);
    }
    Tensor last = Slab(2);
    be.transpose(x, last);
  }
};

// [O, C, 3, 3, 3] → [O, 3, C, 3, 3] in place (host weights, once at load): input channels ordered
// (frame, channel) as History stores them. `k` is the spatial taps per (channel, frame): 9, or 1 for
// the temporal upsampler's (3, 1, 1) conv.
void FramesFirst(Tensor& w, int64_t out, int64_t c, int64_t k) {
  std::vector<float> tmp(static_cast<size_t>(c * 3 * k));
  for (int64_t o = 0; o < out; ++o) {
    float* row = w.f32() + o * c * 3 * k;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t t = 0; t < 3; ++t)
        for (int64_t i = 0; i < k; ++i) tmp[(t * c + ch) * k + i] = row[(ch * 3 + t) * k + i];
    std::copy(tmp.begin(), tmp.end(), row);
  }
}

// A 3x3x3 causal conv (pad 1 in H and W, 2 frames of history in front) with its history.
struct CausalConv3 {
  Tensor w, b;  // w: the [O, C, 3, 3, 3] weight as [O, 3C, 3, 3], input channels (frame, channel)
  int64_t c_in = 0, c_out = 0;
  int h = 0, wd = 0;
  History hist;

  Status Reset(Backend& be, int height, int width) {
    h = height;
    wd = width;
    return hist.Reset(be, c_in, static_cast<int64_t>(height) * width);
  }
  void Release() { hist.buf = {}; }
  size_t Held() const { return Floats(hist.buf); }
  // x [plane, c_in] pixel-major → y [c_out, plane] channel-major.
  void Run(Backend& be, const Tensor& x, Tensor y) {
    hist.Push(be, x);
    y = Tensor::View(y.data, DType::kF32, {c_out, h, wd}, y.device);
    be.conv3x3(Planes(hist.buf, 3 * c_in, h, wd), w, b, y);
  }
};

// Activations and scratch of the residual blocks, one set for all resolutions: a level's frame is
// dead once its upsampler has read it (into buffers of its own), before the next level runs.
struct Scratch {
  int64_t plane = 0;  // of the level running now
  BackendBuffer a, b, t, t2, ycm;
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
  void Run(Backend& be, Scratch& s, const Tensor& x, Tensor out) {
    const int64_t p = s.plane;
    if (shortcut) {
      (*shortcut)(be, x, out);
    } else {
      be.copy(x, out);
    }
    Tensor t = Mat(s.t, p, c_in);
    be.copy(x, t);
    be.rms_norm(t, g1, ChannelNormEps(c_in));
    be.silu(t);
    conv1.Run(be, t, Mat(s.ycm, c_out, p));
    Tensor t2 = Mat(s.t, p, c_out);
    be.transpose(Mat(s.ycm, c_out, p), t2);
    be.rms_norm(t2, g2, ChannelNormEps(c_out));
    be.silu(t2);
    conv2.Run(be, t2, Mat(s.ycm, c_out, p));
    Tensor f = Mat(s.t2, p, c_out);
    be.transpose(Mat(s.ycm, c_out, p), f);
    be.add(out, f);
  }
};

// Single-head self-attention over the pixels of one frame.
struct AttnBlock {
  int64_t c = 0;
  Tensor gamma;
  Linear qkv, proj;
  BackendBuffer n, q, o, f;

  void Release() {
    for (auto* buf : {&n, &q, &o, &f}) *buf = {};
  }
  size_t Held() const { return Floats(n) + Floats(q) + Floats(o) + Floats(f); }
  Status Run(Backend& be, int64_t plane, Tensor x) {
    DS_TRY(Ensure(be, n, plane * c));
    DS_TRY(Ensure(be, q, plane * 3 * c));
    DS_TRY(Ensure(be, o, plane * c));
    DS_TRY(Ensure(be, f, plane * c));
    Tensor nt = Mat(n, plane, c), qt = Mat(q, plane, 3 * c);
    be.copy(x, nt);
    be.rms_norm(nt, gamma, ChannelNormEps(c));
    qkv(be, nt, qt);
    auto part = [&](int i) {
      Tensor t = Tensor::View(q.tensor.f32() + i * c, DType::kF32, {plane, 1, c}, q.tensor.device);
      t.strides[0] = 3 * c * static_cast<int64_t>(sizeof(float));
      return t;
    };
    Tensor oh = Tensor::View(o.tensor.data, DType::kF32, {plane, 1, c}, o.tensor.device);
    be.attention(part(0), part(1), part(2), 1.0f / std::sqrt(static_cast<float>(c)), oh);
    Tensor ft = Mat(f, plane, c);
    proj(be, Mat(o, plane, c), ft);
    be.add(x, ft);
    return Status::Ok();
  }
};

// Nearest 2x upsampling + 3x3 conv (c → c/2) per frame, preceded for 'upsample3d' by a causal
// (3,1,1) conv (c → 2c) that turns each frame into two, except the very first frame of a video.
struct Resample {
  int64_t c = 0;
  bool temporal = false, first = true;
  Tensor conv_w, conv_b;  // [c/2, c, 3, 3]
  Tensor tc_w, tc_b;      // time_conv [2c, c, 3, 1, 1] as [2c, 3c], input channels (frame, channel)
  int h = 0, w = 0;
  int64_t plane = 0;
  History hist;
  BackendBuffer x3, y, cm, up, conv, out;

  Status Reset(Backend& be, int height, int width) {
    h = height;
    w = width;
    plane = static_cast<int64_t>(height) * width;
    first = true;
    if (temporal) {
      DS_TRY(hist.Reset(be, c, plane));
      DS_TRY(Ensure(be, x3, plane * 3 * c));
      DS_TRY(Ensure(be, y, plane * 2 * c));
    }
    DS_TRY(Ensure(be, cm, plane * c));
    DS_TRY(Ensure(be, up, 4 * plane * c));
    DS_TRY(Ensure(be, conv, 4 * plane * (c / 2)));
    return Ensure(be, out, 4 * plane * (c / 2));
  }

  void Release() {
    hist.buf = {};
    for (auto* buf : {&x3, &y, &cm, &up, &conv, &out}) *buf = {};
  }
  size_t Held() const {
    size_t n = Floats(hist.buf);
    for (const auto* buf : {&x3, &y, &cm, &up, &conv, &out}) n += Floats(*buf);
    return n;
  }

  // x [plane, c] pixel-major; emit receives each output frame [4·plane, c/2].
  template <typename Emit>
  Status Run(Backend& be, const Tensor& x, const Emit& emit) {
    if (!temporal || first) {
      first = false;
      return Spatial(be, x, emit);
    }
    hist.Push(be, x);
    Tensor x3t = Mat(x3, plane, 3 * c), yt = Mat(y, plane, 2 * c);
    be.transpose(Mat(hist.buf, 3 * c, plane), x3t);
    be.linear(x3t, tc_w, &tc_b, yt);
    // Output channels [0, c) are the earlier frame, [c, 2c) the later one.
    DS_TRY(Spatial(be, Mat(y, plane, c, 2 * c), emit));
    return Spatial(be, Mat(y, plane, c, 2 * c, c), emit);
  }

  template <typename Emit>
  Status Spatial(Backend& be, const Tensor& x, const Emit& emit) {
    Tensor cmt = Mat(cm, c, plane);
    be.transpose(x, cmt);
    Tensor upt = Planes(up, c, 2 * h, 2 * w);
    be.upsample_nearest2x(Planes(cm, c, h, w), upt);
    Tensor ct = Planes(conv, c / 2, 2 * h, 2 * w);
    be.conv3x3(upt, conv_w, conv_b, ct);
    Tensor o = Mat(out, 4 * plane, c / 2);
    be.transpose(Mat(conv, c / 2, 4 * plane), o);
    return emit(o);
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
  int out_h = 0, out_w = 0;  // the video frame's size
  bool clamp = true;
  int64_t top_plane = 0;              // latent resolution: conv_in and the middle block
  std::vector<int64_t> level_planes;  // one per up block
  Scratch scratch;
  BackendBuffer zin, zq, rgb;             // in the backend's memory
  std::vector<float> zin_host, rgb_host;  // the frame in and out, on the host
  BackendBuffer pixels;                   // PushPixels' frame bytes, in the backend's memory
  std::vector<uint8_t> pixels_host;       // and on the host
  uint64_t backend = 0;                   // Backend::id() of Begin's, which every Push must use

  // The weights in a non-host backend's memory (copied at the first Begin there), and the host
  // views they replaced, to put back if another backend comes.
  uint64_t weights_on = 0;  // Backend::id(), 0: the host views
  std::vector<BackendBuffer> device_weights;
  std::vector<Tensor> host_weights;

  template <typename F>
  void ForEachWeight(F&& f) {
    auto res = [&](ResBlock& b) {
      for (Tensor* t : {&b.g1, &b.g2, &b.conv1.w, &b.conv1.b, &b.conv2.w, &b.conv2.b}) f(*t);
      if (b.shortcut) {
        f(b.shortcut->w);
        f(b.shortcut->b);
      }
    };
    for (Tensor* t : {&post_quant.w, &post_quant.b, &conv_in.w, &conv_in.b, &mid_attn.gamma, &mid_attn.qkv.w,
                      &mid_attn.qkv.b, &mid_attn.proj.w, &mid_attn.proj.b, &norm_out, &conv_out.w, &conv_out.b}) {
      f(*t);
    }
    res(mid0);
    res(mid1);
    for (UpBlock& ub : ups) {
      for (ResBlock& b : ub.res) res(b);
      if (ub.up) {
        for (Tensor* t : {&ub.up->conv_w, &ub.up->conv_b, &ub.up->tc_w, &ub.up->tc_b}) f(*t);
      }
    }
  }
  Status PlaceWeights(Backend& be);

  // What becomes of each decoded frame: planar RGB [3, out_h·out_w] in the backend's memory.
  using Emit = std::function<Status(const Tensor& rgb)>;
  Status Decode(Backend& be, const float* zf, const Emit& emit);
  Status RunUp(Backend& be, size_t i, const Tensor& x, const Emit& emit);
  Status Head(Backend& be, const Tensor& x, const Emit& emit);
};

Status WanVaeDecoder::Impl::PlaceWeights(Backend& be) {
  if (weights_on == be.id()) return Status::Ok();
  if (!host_weights.empty()) {  // back to the host views first
    size_t i = 0;
    ForEachWeight([&](Tensor& t) { t = host_weights[i++]; });
    host_weights.clear();
    device_weights.clear();
  }
  weights_on = be.id();
  if (be.device() == Device::kCpu) return Status::Ok();
  Status status = Status::Ok();
  ForEachWeight([&](Tensor& t) {
    host_weights.push_back(t);
    if (!status.ok() || t.data == nullptr) return;
    Result<BackendBuffer> buf = be.NewBuffer(DType::kF32, {t.numel()});
    if (buf.ok()) status = be.CopyToBackend(Tensor::View(t.data, DType::kF32, {t.numel()}), buf->tensor);
    if (!buf.ok()) status = buf.status();
    if (!status.ok()) return;
    t.data = buf->tensor.data;
    t.device = buf->tensor.device;
    device_weights.push_back(std::move(*buf));
  });
  if (!status.ok()) {
    weights_on = 0;
    size_t i = 0;
    ForEachWeight([&](Tensor& t) { t = host_weights[i++]; });
    host_weights.clear();
    device_weights.clear();
  }
  return status;
}

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
  if (r.status().ok()) {
    FramesFirst(w, c_out, c_in, 9);
    conv.w = Tensor::View(w.f32(), DType::kF32, {c_out, 3 * c_in, 3, 3});
  }
  return conv;
}

Linear LoadPointwise(WanTensorReader& r, const std::string& name, std::vector<int64_t> shape) {
  Linear l;
  Tensor w = r.get(name + ".weight", shape);
  l.b = r.get(name + ".bias", {shape[0]});
  if (r.status().ok()) l.w = Tensor::View(w.f32(), DType::kF32, {shape[0], shape[1]});
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
      if (r.status().ok()) {
        FramesFirst(tw, 2 * out, out, 1);
        s.tc_w = Tensor::View(tw.f32(), DType::kF32, {2 * out, 3 * out});
      }
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

Status WanVaeDecoder::Begin(Backend& be, int h, int w, Range range) {
  if (h <= 0 || w <= 0) return Error(Code::kInvalidArgument, "VAE: latent size {}x{} is not positive", w, h);
  Impl& m = *impl_;
  // Buffers are reused from one video (or tile) to the next on the same backend only: another
  // backend's, or those a failed Begin left, are let go first.
  if (m.backend != be.id()) End();
  m.backend = be.id();
  Status status = Allocate(be, h, w, range);
  if (!status.ok()) End();
  return status;
}

Status WanVaeDecoder::Allocate(Backend& be, int h, int w, Range range) {
  Impl& m = *impl_;
  m.h = 0;  // not started until every buffer is ready
  DS_TRY(m.PlaceWeights(be));
  m.clamp = range == Range::kClamped;
  const int64_t plane = static_cast<int64_t>(h) * w, z = cfg_.z_dim;
  const std::vector<int> dims = cfg_.decoder_dims();
  int64_t scratch = plane * dims[0];
  m.top_plane = plane;
  m.zin_host.resize(static_cast<size_t>(plane * z));
  DS_TRY(Ensure(be, m.zin, plane * z));
  DS_TRY(Ensure(be, m.zq, plane * z));
  DS_TRY(m.conv_in.Reset(be, h, w));
  for (ResBlock* b : {&m.mid0, &m.mid1}) {
    DS_TRY(b->conv1.Reset(be, h, w));
    DS_TRY(b->conv2.Reset(be, h, w));
  }
  m.level_planes.resize(m.ups.size());
  int lh = h, lw = w;
  for (size_t i = 0; i < m.ups.size(); ++i) {
    UpBlock& ub = m.ups[i];
    m.level_planes[i] = static_cast<int64_t>(lh) * lw;
    for (ResBlock& b : ub.res) {
      DS_TRY(b.conv1.Reset(be, lh, lw));
      DS_TRY(b.conv2.Reset(be, lh, lw));
      scratch = std::max(scratch, m.level_planes[i] * std::max(b.c_in, b.c_out));
    }
    if (ub.up) {
      DS_TRY(ub.up->Reset(be, lh, lw));
      lh *= 2;
      lw *= 2;
    }
  }
  for (auto* buf : {&m.scratch.a, &m.scratch.b, &m.scratch.t, &m.scratch.t2, &m.scratch.ycm}) {
    DS_TRY(Ensure(be, *buf, scratch));
  }
  DS_TRY(m.conv_out.Reset(be, lh, lw));
  const int64_t rgb = static_cast<int64_t>(cfg_.out_channels) * lh * lw;
  DS_TRY(Ensure(be, m.rgb, rgb));
  m.out_h = lh;
  m.out_w = lw;
  m.rgb_host.resize(static_cast<size_t>(rgb));
  m.h = h;
  m.w = w;
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
    *buf = {};
  }
  m.pixels = {};
  std::vector<float>().swap(m.zin_host);
  std::vector<float>().swap(m.rgb_host);
  std::vector<uint8_t>().swap(m.pixels_host);
  m.h = m.w = 0;
  m.backend = 0;
}

// Mirrors what Begin and the first Push allocate (a test holds the two to AllocatedBytes).
size_t WanVaeDecoder::WorkingSetBytes(int h, int w) const {
  const Impl& m = *impl_;
  const int64_t plane = static_cast<int64_t>(h) * w, z = cfg_.z_dim, d0 = m.conv_in.c_out;
  auto conv = [](const CausalConv3& c, int64_t p) { return c.c_in * 3 * p; };
  // zin (backend + host), zq, conv_in, the attention's buffers.
  int64_t floats = 3 * plane * z + conv(m.conv_in, plane) + 6 * plane * d0;
  for (const ResBlock* b : {&m.mid0, &m.mid1}) floats += conv(b->conv1, plane) + conv(b->conv2, plane);
  int64_t scratch = plane * d0, p = plane;
  for (const UpBlock& ub : m.ups) {
    for (const ResBlock& b : ub.res) {
      floats += conv(b.conv1, p) + conv(b.conv2, p);
      scratch = std::max(scratch, p * std::max(b.c_in, b.c_out));
    }
    if (ub.up) {
      const int64_t c = ub.up->c;
      if (ub.up->temporal) floats += c * 3 * p + p * 3 * c + p * 2 * c;  // history, x3, y
      floats += p * c + 4 * p * c + 2 * (4 * p * (c / 2));               // cm, up, conv, out
      p *= 4;
    }
  }
  floats += 5 * scratch + conv(m.conv_out, p) + 2 * static_cast<int64_t>(cfg_.out_channels) * p;  // rgb twice
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
    n += Floats(*buf);
  }
  n += m.zin_host.capacity() + m.rgb_host.capacity();
  const size_t pixels = m.pixels.tensor.data != nullptr ? m.pixels.tensor.nbytes() : 0;
  return n * sizeof(float) + pixels + m.pixels_host.capacity();
}

Status WanVaeDecoder::Push(Backend& be, const float* zf, const FrameFn& on_frame) {
  Impl& m = *impl_;
  return m.Decode(be, zf, [&](const Tensor& rgb) -> Status {
    const int64_t n = rgb.numel();
    DS_TRY(be.CopyToHost(rgb, Tensor::View(m.rgb_host.data(), DType::kF32, {rgb.shape[0], rgb.shape[1]})));
    if (m.clamp) {
      for (int64_t i = 0; i < n; ++i) m.rgb_host[i] = std::clamp(m.rgb_host[i], -1.0f, 1.0f);
    }
    return on_frame(m.rgb_host.data());
  });
}

Status WanVaeDecoder::PushPixels(Backend& be, const float* zf, FrameFormat format, const PixelFn& on_pixels) {
  Impl& m = *impl_;
  return m.Decode(be, zf, [&](const Tensor& rgb) -> Status {
    const int64_t bytes = static_cast<int64_t>(LayoutOf(format.pixels, m.out_w, m.out_h).bytes);
    if (m.pixels.tensor.data == nullptr || m.pixels.tensor.numel() != bytes) {
      m.pixels = {};
      DS_ASSIGN_OR_RETURN(m.pixels, be.NewBuffer(DType::kU8, {bytes}));
      m.pixels_host.resize(static_cast<size_t>(bytes));
    }
    be.planar_to_pixels(Tensor::View(rgb.data, DType::kF32, {rgb.shape[0], m.out_h, m.out_w}, rgb.device), format,
                        m.pixels.tensor);
    DS_TRY(be.CopyToHost(m.pixels.tensor, Tensor::View(m.pixels_host.data(), DType::kU8, {bytes})));
    return on_pixels(m.pixels_host.data());
  });
}

Status WanVaeDecoder::Impl::Decode(Backend& be, const float* zf, const Emit& emit) {
  if (h == 0) return Error(Code::kState, "VAE: Push before Begin");
  if (backend != be.id()) return Error(Code::kState, "VAE: Push on another backend than Begin's");
  Scratch& sc = scratch;
  const int64_t p = top_plane, z = post_quant.in(), d0 = conv_in.c_out;
  sc.plane = p;
  // The latent frame is small ([z, plane]): pixel-major on the host, then one copy in.
  for (int64_t ch = 0; ch < z; ++ch)
    for (int64_t i = 0; i < p; ++i) zin_host[static_cast<size_t>(i * z + ch)] = zf[ch * p + i];
  const Tensor z_rows = Mat(zin, p, z);
  DS_TRY(be.CopyToBackend(Tensor::View(zin_host.data(), DType::kF32, {p, z}), z_rows));
  Tensor zq_rows = Mat(zq, p, z);
  post_quant(be, z_rows, zq_rows);
  conv_in.Run(be, zq_rows, Mat(sc.ycm, d0, p));
  // The frame moves between a and b; the residual blocks use t, t2 and ycm.
  Tensor b = Mat(sc.b, p, d0), a = Mat(sc.a, p, d0);
  be.transpose(Mat(sc.ycm, d0, p), b);
  mid0.Run(be, sc, b, a);
  DS_TRY(mid_attn.Run(be, p, a));
  mid1.Run(be, sc, a, b);
  return RunUp(be, 0, b, emit);
}

Status WanVaeDecoder::Impl::RunUp(Backend& be, size_t i, const Tensor& x, const Emit& emit) {
  UpBlock& ub = ups[i];
  const int64_t p = level_planes[i];
  scratch.plane = p;
  // x is scratch.b (from the middle block) or an upsampler's own output, so writing a first is safe.
  Tensor cur = x;
  const BackendBuffer* bufs[2] = {&scratch.a, &scratch.b};
  int which = 0;
  for (ResBlock& b : ub.res) {
    Tensor out = Mat(*bufs[which], p, b.c_out);
    b.Run(be, scratch, cur, out);
    cur = out;
    which ^= 1;
  }
  if (!ub.up) return Head(be, cur, emit);
  return ub.up->Run(be, cur, [&](const Tensor& frame) { return RunUp(be, i + 1, frame, emit); });
}

Status WanVaeDecoder::Impl::Head(Backend& be, const Tensor& x, const Emit& emit) {
  const int64_t c = conv_out.c_in, p = level_planes.back();
  Tensor t = Mat(scratch.t, p, c);
  be.copy(x, t);
  be.rms_norm(t, norm_out, ChannelNormEps(c));
  be.silu(t);
  conv_out.Run(be, t, Mat(rgb, conv_out.c_out, p));
  return emit(Mat(rgb, conv_out.c_out, p));
}

}  // namespace ds
