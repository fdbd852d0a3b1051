#include "core/dit.h"

#include <cmath>
#include <numeric>
#include <string>

#include "core/patchify.h"
#include "core/weights.h"

namespace ds {

// Scratch buffers of one forward, sized for (items, tokens, text tokens) and reused across steps.
struct Dit::Workspace {
  int items = 0, n = 0, sum_l = 0;
  std::vector<int> l, joint_first, text_first;  // per item: text length, first joint row, first text row
  std::vector<float> patches, x, a, f, hidden, ctx, ac, fc, hc, q, k, v, o, cq, ck, cv, co, c, cs, mx, mc, temb, tmp,
      out;
  FirstBlockCache cache;  // over x, all items' video rows
};

namespace {

void Ensure(std::vector<float>& buf, size_t size) {
  if (buf.size() < size) buf.resize(size);
}

// Offsets of the six AdaLN-Zero modulation vectors inside one [6d] row.
enum Mod { kShift1 = 0, kScale1, kGate1, kShift2, kScale2, kGate2 };

Tensor ModSlice(const std::vector<float>& m, int item, int which, int d, int per_item) {
  return Tensor::View(const_cast<float*>(m.data()) + static_cast<size_t>(item) * per_item * d + which * d, DType::kF32,
                      {d});
}

}  // namespace

Status Dit::LoadStream(WeightReader& r, const std::string& p, Stream& s) const {
  const int d = cfg_.dim, dh = cfg_.head_dim();
  s.mod = r.linear(p + "_mod", 6 * d, d);
  Linear qkv = r.linear(p + "_attn.qkv", 3 * d, d);
  if (!r.status().ok()) return r.status();
  // The fused [3d, d] projection is used as three row slices so that q, k and v land in separate
  // buffers, where per-head norms and RoPE see uniform strides.
  for (int i = 0; i < 3; ++i) {
    Linear& dst = i == 0 ? s.q : i == 1 ? s.k : s.v;
    dst.w = Rows(qkv.w, i * d, d);
    dst.b = Tensor::View(static_cast<float*>(qkv.b.data) + i * d, DType::kF32, {d});
  }
  if (cfg_.qk_norm) {
    s.q_norm = r.tensor(p + "_attn.q_norm.weight", {dh});
    s.k_norm = r.tensor(p + "_attn.k_norm.weight", {dh});
  }
  s.out = r.linear(p + "_attn.out", d, d);
  s.fc1 = r.linear(p + "_ffn.fc1", cfg_.ffn, d);
  s.fc2 = r.linear(p + "_ffn.fc2", d, cfg_.ffn);
  return r.status();
}

Result<Dit> Dit::Load(const DitConfig& config, Weights& weights) {
  Dit m;
  m.cfg_ = config;
  const DitConfig& c = m.cfg_;
  const int d = c.dim;
  WeightReader r(weights);
  m.x_embed_ = r.linear("dit.x_embed", d, static_cast<int64_t>(c.in_channels) * c.patch_volume());
  m.t_fc1_ = r.linear("dit.t_embed.fc1", d, c.freq_dim);
  m.t_fc2_ = r.linear("dit.t_embed.fc2", d, d);
  if (c.pooled_dim > 0) {
    m.pooled_fc1_ = r.linear("dit.pooled_embed.fc1", d, c.pooled_dim);
    m.pooled_fc2_ = r.linear("dit.pooled_embed.fc2", d, d);
  }
  if (c.block_kind != BlockKind::kDit) m.ctx_embed_ = r.linear("dit.ctx_embed", d, c.text_dim);
  m.blocks_.resize(c.layers);
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "dit.blocks." + std::to_string(i) + ".";
    Block& b = m.blocks_[i];
    DS_TRY(m.LoadStream(r, p + "x", b.x));
    if (c.block_kind == BlockKind::kMmdit) DS_TRY(m.LoadStream(r, p + "c", b.c));
    if (c.block_kind == BlockKind::kCross) {
      CrossAttention& x = b.cross;
      x.norm_w = r.tensor(p + "cross_norm.weight", {d});
      x.norm_b = r.tensor(p + "cross_norm.bias", {d});
      x.q = r.linear(p + "cross.q", d, d);
      x.k = r.linear(p + "cross.k", d, c.text_dim == 0 ? d : d);
      x.v = r.linear(p + "cross.v", d, d);
      x.out = r.linear(p + "cross.out", d, d);
      if (c.qk_norm) {
        x.q_norm = r.tensor(p + "cross.q_norm.weight", {c.head_dim()});
        x.k_norm = r.tensor(p + "cross.k_norm.weight", {c.head_dim()});
      }
    }
  }
  m.final_mod_ = r.linear("dit.final_mod", 2 * d, d);
  m.final_ = r.linear("dit.final", static_cast<int64_t>(c.out_channels) * c.patch_volume(), d);
  DS_TRY(r.status());
  m.ws_ = std::make_shared<Workspace>();
  return m;
}

Status Dit::EnsureGeometry(int T, int H, int W) {
  const auto& p = cfg_.patch;
  if (T % p[0] != 0 || H % p[1] != 0 || W % p[2] != 0) {
    return Error(Code::kUnsupported, "latent grid {}x{}x{} is not a multiple of the patch {}x{}x{}", T, H, W, p[0],
                 p[1], p[2]);
  }
  const std::array<int, 3> grid = {T / p[0], H / p[1], W / p[2]};
  if (grid == grid_) return Status::Ok();
  if (cfg_.pos == PosKind::kRope3d) {
    rope_ = BuildRope3d(grid[0], grid[1], grid[2], cfg_.rope_axes, cfg_.rope_theta);
  } else {
    sincos_ = BuildSinCos3d(grid[0], grid[1], grid[2], cfg_.rope_axes);
  }
  grid_ = grid;  // only once the tables exist: a throw above must not leave them marked current
  return Status::Ok();
}

void Dit::TimestepEmbedding(float t, float* out) const {
  const int half = cfg_.freq_dim / 2;
  const double s = static_cast<double>(t) * 1000.0;
  for (int i = 0; i < half; ++i) {
    const double f = std::exp(-std::log(10000.0) * i / half);
    out[i] = static_cast<float>(std::cos(s * f));
    out[half + i] = static_cast<float>(std::sin(s * f));
  }
}

Status Dit::Forward(Backend& be, std::span<const DitItem> items, float t, int T, int H, int W,
                    const BlockCacheUse& cache) {
  if (cache.threshold > 0) DS_TRY(FirstBlockCache::CheckSlot(cache.slot));
  DS_TRY(EnsureGeometry(T, H, W));
  const DitConfig& c = cfg_;
  const int d = c.dim, B = static_cast<int>(items.size());
  const int n = grid_[0] * grid_[1] * grid_[2];
  const int pv = c.patch_volume();
  Workspace& ws = *ws_;
  ws.items = B;
  ws.n = n;
  ws.l.assign(B, 0);
  ws.joint_first.assign(B, 0);
  ws.text_first.assign(B, 0);
  int sum_l = 0, joint = 0;
  for (int b = 0; b < B; ++b) {
    ws.l[b] = c.block_kind == BlockKind::kDit ? 0 : items[b].text_len;
    ws.text_first[b] = sum_l;
    ws.joint_first[b] = joint;
    sum_l += ws.l[b];
    // Joint rows hold [video ‖ text] for mmdit; the other kinds self-attend over video only.
    joint += n + (c.block_kind == BlockKind::kMmdit ? ws.l[b] : 0);
  }
  ws.sum_l = sum_l;
  const size_t bn = static_cast<size_t>(B) * n;
  Ensure(ws.patches, bn * c.in_channels * pv);
  for (auto* buf : {&ws.x, &ws.a, &ws.f, &ws.cq, &ws.co}) Ensure(*buf, bn * d);
  Ensure(ws.hidden, bn * c.ffn);
  for (auto* buf : {&ws.ctx, &ws.ac, &ws.fc, &ws.ck, &ws.cv}) Ensure(*buf, static_cast<size_t>(sum_l) * d + 1);
  Ensure(ws.hc, static_cast<size_t>(sum_l) * c.ffn + 1);
  for (auto* buf : {&ws.q, &ws.k, &ws.v, &ws.o}) Ensure(*buf, static_cast<size_t>(joint) * d);
  for (auto* buf : {&ws.c, &ws.cs, &ws.tmp}) Ensure(*buf, static_cast<size_t>(B) * d);
  Ensure(ws.mx, static_cast<size_t>(B) * 6 * d);
  Ensure(ws.mc, static_cast<size_t>(B) * 6 * d);
  Ensure(ws.temb, c.freq_dim);
  Ensure(ws.out, bn * c.out_channels * pv);

  // Patch embedding (+ fixed positions when the model uses sin-cos).
  const int patch_len = c.in_channels * pv;
  for (int b = 0; b < B; ++b) {
    Patchify(items[b].latent, c.in_channels, T, H, W, c.patch, ws.patches.data() + b * n * patch_len);
  }
  Tensor x = Mat(ws.x.data(), bn, d);
  x_embed_(be, Mat(ws.patches.data(), bn, patch_len), x);
  if (c.pos == PosKind::kSinCos3d) {
    for (int b = 0; b < B; ++b) {
      Tensor xb = Rows(x, static_cast<int64_t>(b) * n, n);
      be.add(xb, Mat(sincos_.data(), n, d));
    }
  }

  // Conditioning vector c = MLP(sinusoid(t)) (+ MLP(pooled text)), one row per item.
  TimestepEmbedding(t, ws.temb.data());
  Tensor cvec = Mat(ws.c.data(), B, d), tmp = Mat(ws.tmp.data(), B, d);
  for (int b = 0; b < B; ++b) {
    Tensor h = Mat(ws.tmp.data() + b * d, 1, d), cb = Mat(ws.c.data() + b * d, 1, d);
    t_fc1_(be, Mat(ws.temb.data(), 1, c.freq_dim), h);
    be.silu(h);
    t_fc2_(be, h, cb);
  }
  if (c.pooled_dim > 0) {
    Tensor cs = Mat(ws.cs.data(), B, d);
    for (int b = 0; b < B; ++b) {
      Tensor h = Mat(ws.tmp.data() + b * d, 1, d), out = Mat(ws.cs.data() + b * d, 1, d);
      pooled_fc1_(be, Mat(const_cast<float*>(items[b].pooled), 1, c.pooled_dim), h);
      be.silu(h);
      pooled_fc2_(be, h, out);
    }
    be.add(cvec, cs);
  }
  std::copy(ws.c.begin(), ws.c.begin() + B * d, ws.cs.begin());
  Tensor cs = Mat(ws.cs.data(), B, d);
  be.silu(cs);

  // Text stream.
  if (c.block_kind != BlockKind::kDit && sum_l > 0) {
    for (int b = 0; b < B; ++b) {
      Tensor out = Mat(ws.ctx.data() + static_cast<size_t>(ws.text_first[b]) * d, ws.l[b], d);
      ctx_embed_(be, Mat(const_cast<float*>(items[b].text), ws.l[b], c.text_dim), out);
    }
  }

  if (cache.threshold > 0 && !blocks_.empty()) {
    // The demo's forward issues its ops directly (no Backend::RunRecorded), so the decision can
    // sit between them.
    FirstBlockCache& fbc = ws.cache;
    DS_TRY(fbc.Prepare(be, static_cast<int64_t>(bn), d));
    fbc.BeforeFirstBlock(be, x);
    RunBlock(be, blocks_[0], items, ws);
    fbc.AfterFirstBlock(be, x, cache.slot);
    DS_ASSIGN_OR_RETURN(const bool reuse, fbc.Reuses(be, cache.slot, cache.threshold));
    if (reuse) {
      fbc.AddRest(be, x, cache.slot);
    } else {
      fbc.BeforeRest(be, x, cache.slot);
      for (size_t i = 1; i < blocks_.size(); ++i) RunBlock(be, blocks_[i], items, ws);
      fbc.AfterRest(be, x, cache.slot);
      fbc.Computed(cache.slot);
    }
  } else {
    for (const Block& blk : blocks_) RunBlock(be, blk, items, ws);
  }

  // Final AdaLN + projection + unpatchify.
  Tensor m = Mat(ws.mx.data(), B, 2 * d);
  final_mod_(be, cs, m);
  Tensor a = Mat(ws.a.data(), bn, d);
  for (int b = 0; b < B; ++b) {
    Tensor xb = Rows(x, static_cast<int64_t>(b) * n, n), ab = Rows(a, static_cast<int64_t>(b) * n, n);
    be.layer_norm_modulate(xb, ModSlice(ws.mx, b, 0, d, 2), ModSlice(ws.mx, b, 1, d, 2), c.eps, ab);
  }
  const int out_len = c.out_channels * pv;
  Tensor out = Mat(ws.out.data(), bn, out_len);
  final_(be, a, out);
  for (int b = 0; b < B; ++b) {
    Unpatchify(ws.out.data() + static_cast<size_t>(b) * n * out_len, c.out_channels, T, H, W, c.patch,
               items[b].velocity);
  }
  (void)tmp;
  return Status::Ok();
}

void Dit::ResetBlockCache() { ws_->cache.Reset(); }

FirstBlockCache::Stats Dit::block_cache_stats(int slot) const { return ws_->cache.stats(slot); }

void Dit::RunBlock(Backend& be, const Block& blk, std::span<const DitItem> items, Workspace& ws) {
  const DitConfig& c = cfg_;
  const int d = c.dim, B = ws.items, n = ws.n, H = c.heads, dh = c.head_dim();
  const bool mmdit = c.block_kind == BlockKind::kMmdit;
  const size_t bn = static_cast<size_t>(B) * n;
  Tensor x = Mat(ws.x.data(), bn, d), a = Mat(ws.a.data(), bn, d), f = Mat(ws.f.data(), bn, d);
  Tensor ctx = Mat(ws.ctx.data(), ws.sum_l, d), ac = Mat(ws.ac.data(), ws.sum_l, d);
  Tensor fc = Mat(ws.fc.data(), ws.sum_l, d);
  Tensor cs = Mat(ws.cs.data(), B, d);

  Tensor mx = Mat(ws.mx.data(), B, 6 * d), mc = Mat(ws.mc.data(), B, 6 * d);
  blk.x.mod(be, cs, mx);
  if (mmdit) blk.c.mod(be, cs, mc);

  auto joint_rows = [&](std::vector<float>& buf, int b, int first, int rows) {
    return Mat(buf.data() + static_cast<size_t>(ws.joint_first[b] + first) * d, rows, d);
  };
  auto heads_view = [&](const Tensor& rows) { return Tensor::View(rows.data, DType::kF32, {rows.shape[0], H, dh}); };
  auto per_head = [&](const Tensor& rows) { return Tensor::View(rows.data, DType::kF32, {rows.shape[0] * H, dh}); };

  // Attention (self for dit/cross, joint [video ‖ text] for mmdit).
  for (int b = 0; b < B; ++b) {
    const int l = mmdit ? ws.l[b] : 0;
    Tensor xb = Rows(x, static_cast<int64_t>(b) * n, n), ab = Rows(a, static_cast<int64_t>(b) * n, n);
    be.layer_norm_modulate(xb, ModSlice(ws.mx, b, kShift1, d, 6), ModSlice(ws.mx, b, kScale1, d, 6), c.eps, ab);
    struct Seg {
      const Stream* s;
      Tensor in;
      int first, rows;
    };
    Seg segs[2] = {{&blk.x, ab, 0, n}, {}};
    int nseg = 1;
    if (l > 0) {
      Tensor cb = Rows(ctx, ws.text_first[b], l), acb = Rows(ac, ws.text_first[b], l);
      be.layer_norm_modulate(cb, ModSlice(ws.mc, b, kShift1, d, 6), ModSlice(ws.mc, b, kScale1, d, 6), c.eps, acb);
      segs[nseg++] = {&blk.c, acb, n, l};
    }
    for (int si = 0; si < nseg; ++si) {
      const Seg& sg = segs[si];
      Tensor q = joint_rows(ws.q, b, sg.first, sg.rows), k = joint_rows(ws.k, b, sg.first, sg.rows);
      Tensor v = joint_rows(ws.v, b, sg.first, sg.rows);
      sg.s->q(be, sg.in, q);
      sg.s->k(be, sg.in, k);
      sg.s->v(be, sg.in, v);
      if (c.qk_norm) {
        Tensor qh = per_head(q), kh = per_head(k);
        be.rms_norm(qh, sg.s->q_norm, c.eps);
        be.rms_norm(kh, sg.s->k_norm, c.eps);
      }
    }
    if (c.pos == PosKind::kRope3d) {
      Tensor cosv = Mat(rope_.cos.data(), n, dh / 2), sinv = Mat(rope_.sin.data(), n, dh / 2);
      Tensor qv = heads_view(joint_rows(ws.q, b, 0, n)), kv = heads_view(joint_rows(ws.k, b, 0, n));
      be.rope(qv, cosv, sinv);
      be.rope(kv, cosv, sinv);
    }
    const int rows = n + l;
    Tensor o = heads_view(joint_rows(ws.o, b, 0, rows));
    be.attention(heads_view(joint_rows(ws.q, b, 0, rows)), heads_view(joint_rows(ws.k, b, 0, rows)),
                 heads_view(joint_rows(ws.v, b, 0, rows)), 1.0f / std::sqrt(static_cast<float>(dh)), o);
    Tensor fb = Rows(f, static_cast<int64_t>(b) * n, n);
    blk.x.out(be, joint_rows(ws.o, b, 0, n), fb);
    be.gate_residual(xb, ModSlice(ws.mx, b, kGate1, d, 6), fb);
    if (l > 0) {
      Tensor fcb = Rows(fc, ws.text_first[b], l), cb = Rows(ctx, ws.text_first[b], l);
      blk.c.out(be, joint_rows(ws.o, b, n, l), fcb);
      be.gate_residual(cb, ModSlice(ws.mc, b, kGate1, d, 6), fcb);
    }
  }

  // Cross-attention (kind `cross`): video queries, text keys/values, ungated residual.
  if (c.block_kind == BlockKind::kCross) {
    const CrossAttention& xa = blk.cross;
    be.layer_norm(x, &xa.norm_w, &xa.norm_b, c.eps, a);
    Tensor cq = Mat(ws.cq.data(), bn, d), co = Mat(ws.co.data(), bn, d);
    xa.q(be, a, cq);
    if (c.qk_norm) {
      Tensor qh = per_head(cq);
      be.rms_norm(qh, xa.q_norm, c.eps);
    }
    for (int b = 0; b < B; ++b) {
      const int l = ws.l[b];
      Tensor qb = Rows(cq, static_cast<int64_t>(b) * n, n), ob = Rows(co, static_cast<int64_t>(b) * n, n);
      if (l == 0) {
        std::fill_n(static_cast<float*>(ob.data), static_cast<size_t>(n) * d, 0.0f);
        continue;
      }
      Tensor kb = Mat(ws.ck.data(), l, d), vb = Mat(ws.cv.data(), l, d);
      Tensor cb = Rows(ctx, ws.text_first[b], l);
      xa.k(be, cb, kb);
      xa.v(be, cb, vb);
      if (c.qk_norm) {
        Tensor kh = per_head(kb);
        be.rms_norm(kh, xa.k_norm, c.eps);
      }
      Tensor oh = heads_view(ob);
      be.attention(heads_view(qb), heads_view(kb), heads_view(vb), 1.0f / std::sqrt(static_cast<float>(dh)), oh);
    }
    xa.out(be, co, f);
    be.add(x, f);
  }

  // Feed-forward, batched over all items of each stream.
  auto ffn = [&](const Stream& s, Tensor& in_out, Tensor& act, Tensor& hidden, Tensor& res,
                 const std::vector<float>& mod, const std::vector<int>& first, const std::vector<int>& rows) {
    for (int b = 0; b < B; ++b) {
      if (rows[b] == 0) continue;
      Tensor ib = Rows(in_out, first[b], rows[b]), abb = Rows(act, first[b], rows[b]);
      be.layer_norm_modulate(ib, ModSlice(mod, b, kShift2, d, 6), ModSlice(mod, b, kScale2, d, 6), c.eps, abb);
    }
    s.fc1(be, act, hidden);
    be.gelu_tanh(hidden);
    s.fc2(be, hidden, res);
    for (int b = 0; b < B; ++b) {
      if (rows[b] == 0) continue;
      Tensor ib = Rows(in_out, first[b], rows[b]), rb = Rows(res, first[b], rows[b]);
      be.gate_residual(ib, ModSlice(mod, b, kGate2, d, 6), rb);
    }
  };
  std::vector<int> vfirst(B), vrows(B, n);
  for (int b = 0; b < B; ++b) vfirst[b] = b * n;
  Tensor hidden = Mat(ws.hidden.data(), bn, c.ffn);
  ffn(blk.x, x, a, hidden, f, ws.mx, vfirst, vrows);
  if (mmdit && ws.sum_l > 0) {
    Tensor hc = Mat(ws.hc.data(), ws.sum_l, c.ffn);
    ffn(blk.c, ctx, ac, hc, fc, ws.mc, ws.text_first, ws.l);
  }
  (void)items;
}

double Dit::Flops(int T, int H, int W, int text_len) const {
  const auto& p = cfg_.patch;
  const double n = static_cast<double>(T / p[0]) * (H / p[1]) * (W / p[2]);
  const double d = cfg_.dim, ffn = cfg_.ffn;
  const double l = cfg_.block_kind == BlockKind::kDit ? 0 : text_len;
  const int streams = cfg_.block_kind == BlockKind::kMmdit ? 2 : 1;
  double per_block = 2 * n * (4 * d * d + 2 * d * ffn);
  double joint = n;
  if (streams == 2) {
    per_block += 2 * l * (4 * d * d + 2 * d * ffn);
    joint += l;
  }
  per_block += 4 * joint * joint * d;  // q·kᵀ and p·v
  if (cfg_.block_kind == BlockKind::kCross) per_block += 2 * n * 2 * d * d + 2 * l * 2 * d * d + 4 * n * l * d;
  const double embed = 2 * n * d * (cfg_.in_channels + cfg_.out_channels) * p[0] * p[1] * p[2];
  return cfg_.layers * per_block + embed;
}

}  // namespace ds
