#include "core/wan/wan_transformer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "core/config.h"
#include "core/patchify.h"
#include "core/wan/wan_weights.h"
#include "core/weights.h"

namespace ds {
namespace {

// Rows of the FFN hidden activation computed at once: bounds its memory (2048 × 8960 floats for
// the 1.3B, 73 MB) independently of the token count, with GEMMs still large enough to run at speed.
constexpr int64_t kFfnChunkRows = 2048;

void Ensure(std::vector<float>& buf, size_t size) {
  if (buf.size() < size) buf.resize(size);
}

// A [rows, cols] view of a contiguous tensor with the same number of elements (e.g. a Conv3d
// weight [D, C, pt, ph, pw] as the [D, C·pt·ph·pw] matrix of the equivalent linear).
Tensor AsMatrix(const Tensor& t, int64_t rows, int64_t cols) { return Mat(t.f32(), rows, cols); }

// diffusers Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0), in float32 as torch
// computes it: [cos(t·f_k), sin(t·f_k)], f_k = exp(−ln(10000)·k/half).
void TimestepFeatures(float t, int freq_dim, float* out) {
  const int half = freq_dim / 2;
  const float neg_log = static_cast<float>(-std::log(10000.0));
  for (int k = 0; k < half; ++k) {
    const float exponent = neg_log * static_cast<float>(k) / static_cast<float>(half);
    const float arg = t * std::exp(exponent);
    out[k] = std::cos(arg);
    out[half + k] = std::sin(arg);
  }
}

// latent[C, T, H, W] ← tokens[(f, h, w), (dt, dy, dx, c)]: Wan's head orders channels last.
void UnpatchifyChannelsLast(const float* tokens, int C, int T, int H, int W, std::array<int, 3> p, float* latent) {
  const int gt = T / p[0], gh = H / p[1], gw = W / p[2];
  const float* src = tokens;
  for (int ti = 0; ti < gt; ++ti)
    for (int hi = 0; hi < gh; ++hi)
      for (int wi = 0; wi < gw; ++wi)
        for (int dt = 0; dt < p[0]; ++dt)
          for (int dy = 0; dy < p[1]; ++dy)
            for (int dx = 0; dx < p[2]; ++dx)
              for (int c = 0; c < C; ++c) {
                latent[((static_cast<size_t>(c) * T + ti * p[0] + dt) * H + hi * p[1] + dy) * W + wi * p[2] + dx] =
                    *src++;
              }
}

}  // namespace

struct WanTransformer::Workspace {
  std::array<int, 3> grid = {0, 0, 0};
  int n = 0, text_len = 0;
  std::vector<float> patches, x, a, q, k, v, o, f, hidden, ctx, ck, cv, tfeat, tmp, temb, e, mod, out;
};

WanTransformer::WanTransformer() : ws_(std::make_unique<Workspace>()) {}
WanTransformer::WanTransformer(WanTransformer&&) noexcept = default;
WanTransformer& WanTransformer::operator=(WanTransformer&&) noexcept = default;
WanTransformer::~WanTransformer() = default;

Result<WanTransformer> WanTransformer::Load(const std::string& path) {
  namespace fs = std::filesystem;
  WanTransformer m;
  DS_ASSIGN_OR_RETURN(m.weights_, OpenWanWeights(path, "transformer"));
  DS_ASSIGN_OR_RETURN(WanCheckpointNaming naming, DetectWanTransformerNaming(*m.weights_));
  std::error_code ec;
  const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
  const std::string config_path = (dir / "config.json").string();
  if (naming.naming == WanNaming::kDiffusers) {
    DS_ASSIGN_OR_RETURN(Config c, Config::Load(config_path));
    DS_ASSIGN_OR_RETURN(m.cfg_, ParseWanTransformerConfig(c));
  } else {
    // The original repos ship a WanModel config.json; single files (ComfyUI) have none.
    std::optional<Config> original;
    if (fs::is_regular_file(config_path, ec)) {
      DS_ASSIGN_OR_RETURN(original, Config::Load(config_path));
    }
    DS_ASSIGN_OR_RETURN(m.cfg_,
                        WanTransformerConfigFromShapes(*m.weights_, naming.prefix, original ? &*original : nullptr));
  }
  const WanTransformerConfig& c = m.cfg_;
  const int64_t d = c.dim(), pv = c.patch_volume();
  WanTensorReader r(*m.weights_, naming, WanTransformerOriginalName);
  Tensor pe = r.get("patch_embedding.weight", {d, c.in_channels, c.patch[0], c.patch[1], c.patch[2]});
  m.patch_.b = r.get("patch_embedding.bias", {d});
  if (r.status().ok()) m.patch_.w = AsMatrix(pe, d, c.in_channels * pv);
  m.t_fc1_ = r.linear("condition_embedder.time_embedder.linear_1", d, c.freq_dim);
  m.t_fc2_ = r.linear("condition_embedder.time_embedder.linear_2", d, d);
  m.t_proj_ = r.linear("condition_embedder.time_proj", 6 * d, d);
  m.txt_fc1_ = r.linear("condition_embedder.text_embedder.linear_1", d, c.text_dim);
  m.txt_fc2_ = r.linear("condition_embedder.text_embedder.linear_2", d, d);
  Tensor head = r.get("scale_shift_table", {1, 2, d});
  if (r.status().ok()) m.head_table_ = AsMatrix(head, 2, d);
  m.proj_out_ = r.linear("proj_out", c.out_channels * pv, d);
  m.blocks_.resize(c.layers);
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    Block& b = m.blocks_[i];
    Tensor table = r.get(p + "scale_shift_table", {1, 6, d});
    if (r.status().ok()) b.table = AsMatrix(table, 6, d);
    b.q = r.linear(p + "attn1.to_q", d, d);
    b.k = r.linear(p + "attn1.to_k", d, d);
    b.v = r.linear(p + "attn1.to_v", d, d);
    b.o = r.linear(p + "attn1.to_out.0", d, d);
    b.norm_q = r.get(p + "attn1.norm_q.weight", {d});
    b.norm_k = r.get(p + "attn1.norm_k.weight", {d});
    b.cq = r.linear(p + "attn2.to_q", d, d);
    b.ck = r.linear(p + "attn2.to_k", d, d);
    b.cv = r.linear(p + "attn2.to_v", d, d);
    b.co = r.linear(p + "attn2.to_out.0", d, d);
    b.cnorm_q = r.get(p + "attn2.norm_q.weight", {d});
    b.cnorm_k = r.get(p + "attn2.norm_k.weight", {d});
    if (c.cross_attn_norm) {
      b.norm2_w = r.get(p + "norm2.weight", {d});
      b.norm2_b = r.get(p + "norm2.bias", {d});
    }
    b.fc1 = r.linear(p + "ffn.net.0.proj", c.ffn, d);
    b.fc2 = r.linear(p + "ffn.net.2", d, c.ffn);
  }
  DS_TRY(r.status());
  WarnUnusedWanTensors(*m.weights_, "transformer");
  return m;
}

Status WanTransformer::EnsureGeometry(int T, int H, int W, int text_len) {
  const WanTransformerConfig& c = cfg_;
  const auto& p = c.patch;
  if (T <= 0 || H <= 0 || W <= 0 || T % p[0] != 0 || H % p[1] != 0 || W % p[2] != 0) {
    return Error(Code::kUnsupported, "latent grid {}x{}x{} is not a positive multiple of the patch {}x{}x{}", T, H, W,
                 p[0], p[1], p[2]);
  }
  const std::array<int, 3> grid = {T / p[0], H / p[1], W / p[2]};
  for (int g : grid) {
    if (g > c.rope_max_seq_len) {
      return Error(Code::kUnsupported, "latent grid {}x{}x{} exceeds the RoPE table of {} positions per axis", T, H, W,
                   c.rope_max_seq_len);
    }
  }
  if (text_len <= 0) return Error(Code::kInvalidArgument, "the text context must have at least one row");
  Workspace& ws = *ws_;
  if (grid != ws.grid) {
    rope_ = BuildRope3d(grid[0], grid[1], grid[2], c.rope_axes(), 10000.0);
    ws.grid = grid;
  }
  ws.n = grid[0] * grid[1] * grid[2];
  ws.text_len = text_len;
  const size_t n = static_cast<size_t>(ws.n), d = static_cast<size_t>(c.dim()), pv = c.patch_volume();
  Ensure(ws.patches, n * c.in_channels * pv);
  for (auto* buf : {&ws.x, &ws.a, &ws.q, &ws.k, &ws.v, &ws.o, &ws.f}) Ensure(*buf, n * d);
  Ensure(ws.hidden, std::min<size_t>(n, kFfnChunkRows) * c.ffn);
  for (auto* buf : {&ws.ctx, &ws.ck, &ws.cv}) Ensure(*buf, static_cast<size_t>(text_len) * d);
  Ensure(ws.tfeat, c.freq_dim);
  Ensure(ws.tmp, std::max(d, static_cast<size_t>(text_len) * d));
  Ensure(ws.temb, d);
  Ensure(ws.e, 6 * d);
  Ensure(ws.mod, 6 * d);
  Ensure(ws.out, n * c.out_channels * pv);
  return Status::Ok();
}

Status WanTransformer::Forward(Backend& be, const float* latent, int T, int H, int W, float timestep,
                               const float* context, int text_len, float* velocity) {
  DS_TRY(EnsureGeometry(T, H, W, text_len));
  const WanTransformerConfig& c = cfg_;
  Workspace& ws = *ws_;
  const int64_t n = ws.n, d = c.dim(), pv = c.patch_volume(), L = text_len;

  Patchify(latent, c.in_channels, T, H, W, c.patch, ws.patches.data());
  Tensor x = Mat(ws.x.data(), n, d);
  patch_(be, Mat(ws.patches.data(), n, c.in_channels * pv), x);

  // Time: temb = MLP(sinusoid(t)) feeds the head; e = time_proj(silu(temb)) every block's modulation.
  TimestepFeatures(timestep, c.freq_dim, ws.tfeat.data());
  Tensor tmp = Mat(ws.tmp.data(), 1, d), temb = Mat(ws.temb.data(), 1, d);
  t_fc1_(be, Mat(ws.tfeat.data(), 1, c.freq_dim), tmp);
  be.silu(tmp);
  t_fc2_(be, tmp, temb);
  std::copy_n(ws.temb.data(), d, ws.tmp.data());
  be.silu(tmp);
  Tensor e = Mat(ws.e.data(), 1, 6 * d);
  t_proj_(be, tmp, e);

  // Text: ctx = linear_2(gelu_tanh(linear_1(context))); zero rows become a constant vector.
  Tensor hid = Mat(ws.tmp.data(), L, d), ctx = Mat(ws.ctx.data(), L, d);
  txt_fc1_(be, Mat(const_cast<float*>(context), L, c.text_dim), hid);
  be.gelu_tanh(hid);
  txt_fc2_(be, hid, ctx);

  for (const Block& b : blocks_) RunBlock(be, b);

  // Head: modulation from the table and temb itself (not the 6D projection).
  float* m = ws.mod.data();
  for (int64_t i = 0; i < 2 * d; ++i) m[i] = head_table_.f32()[i] + ws.temb[i % d];
  Tensor a = Mat(ws.a.data(), n, d);
  be.layer_norm_modulate(x, Tensor::View(m, DType::kF32, {d}), Tensor::View(m + d, DType::kF32, {d}), c.eps, a);
  Tensor out = Mat(ws.out.data(), n, c.out_channels * pv);
  proj_out_(be, a, out);
  UnpatchifyChannelsLast(ws.out.data(), c.out_channels, T, H, W, c.patch, velocity);
  return Status::Ok();
}

void WanTransformer::RunBlock(Backend& be, const Block& b) {
  const WanTransformerConfig& c = cfg_;
  Workspace& ws = *ws_;
  const int64_t n = ws.n, d = c.dim(), heads = c.heads, dh = c.head_dim, L = ws.text_len;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  float* m = ws.mod.data();
  for (int64_t i = 0; i < 6 * d; ++i) m[i] = b.table.f32()[i] + ws.e[i];
  auto mod = [&](int which) { return Tensor::View(m + which * d, DType::kF32, {d}); };
  auto heads_view = [&](std::vector<float>& buf, int64_t rows) {
    return Tensor::View(buf.data(), DType::kF32, {rows, heads, dh});
  };
  Tensor x = Mat(ws.x.data(), n, d), a = Mat(ws.a.data(), n, d), f = Mat(ws.f.data(), n, d);
  Tensor q = Mat(ws.q.data(), n, d), k = Mat(ws.k.data(), n, d), v = Mat(ws.v.data(), n, d);
  Tensor o = Mat(ws.o.data(), n, d);

  // Self-attention: q/k RMSNorm over the full width, then RoPE per head.
  be.layer_norm_modulate(x, mod(0), mod(1), c.eps, a);
  b.q(be, a, q);
  b.k(be, a, k);
  b.v(be, a, v);
  be.rms_norm(q, b.norm_q, c.eps);
  be.rms_norm(k, b.norm_k, c.eps);
  Tensor qh = heads_view(ws.q, n), kh = heads_view(ws.k, n), oh = heads_view(ws.o, n);
  const Tensor cosv = Mat(rope_.cos.data(), n, dh / 2), sinv = Mat(rope_.sin.data(), n, dh / 2);
  be.rope(qh, cosv, sinv);
  be.rope(kh, cosv, sinv);
  be.attention(qh, kh, heads_view(ws.v, n), scale, oh);
  b.o(be, o, f);
  be.gate_residual(x, mod(2), f);

  // Cross-attention to the projected text: affine LN, no modulation, no gate, no RoPE.
  if (c.cross_attn_norm) {
    be.layer_norm(x, &b.norm2_w, &b.norm2_b, c.eps, a);
  } else {
    std::copy_n(ws.x.data(), n * d, ws.a.data());
  }
  Tensor ctx = Mat(ws.ctx.data(), L, d), ck = Mat(ws.ck.data(), L, d), cv = Mat(ws.cv.data(), L, d);
  b.cq(be, a, q);
  be.rms_norm(q, b.cnorm_q, c.eps);
  b.ck(be, ctx, ck);
  be.rms_norm(ck, b.cnorm_k, c.eps);
  b.cv(be, ctx, cv);
  be.attention(qh, heads_view(ws.ck, L), heads_view(ws.cv, L), scale, oh);
  b.co(be, o, f);
  be.add(x, f);

  // Feed-forward in row chunks, so the hidden activation stays small.
  be.layer_norm_modulate(x, mod(3), mod(4), c.eps, a);
  for (int64_t r0 = 0; r0 < n; r0 += kFfnChunkRows) {
    const int64_t rows = std::min(kFfnChunkRows, n - r0);
    Tensor h = Mat(ws.hidden.data(), rows, c.ffn), fr = Rows(f, r0, rows);
    b.fc1(be, Rows(a, r0, rows), h);
    be.gelu_tanh(h);
    b.fc2(be, h, fr);
  }
  be.gate_residual(x, mod(5), f);
}

void WanTransformer::ReleaseWorkspace() {
  ws_ = std::make_unique<Workspace>();
  rope_ = RopeTable{};
}

double WanTransformer::Flops(int T, int H, int W, int text_len) const {
  const WanTransformerConfig& c = cfg_;
  const double n = static_cast<double>(T / c.patch[0]) * (H / c.patch[1]) * (W / c.patch[2]);
  const double d = c.dim(), l = text_len, pv = c.patch_volume();
  const double per_block = 2 * n * (6 * d * d + 2 * d * c.ffn)  // q k v o, cross q o, FFN
                           + 2 * l * 2 * d * d                  // cross k v
                           + 4 * n * n * d + 4 * n * l * d;     // self- and cross-attention
  const double outer = 2 * n * d * pv * (c.in_channels + c.out_channels) + 2 * l * d * (c.text_dim + d);
  return c.layers * per_block + outer;
}

}  // namespace ds
