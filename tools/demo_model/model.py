"""PyTorch modules of the ditstream demo model, written to docs/model_format.md.

Parameter names of TextEncoder / DiT / Decoder are exactly the contract's tensor names once
prefixed with "text." / "dit." / "decoder." (see export.py). The Encoder is training-only.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6


def gelu(x):
    return F.gelu(x, approximate="tanh")


def layer_norm(x):
    return F.layer_norm(x, (x.shape[-1],), eps=EPS)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


# ----------------------------------------------------------------------------------------------
# text encoder
class TextLayer(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=EPS)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=EPS)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)

    def forward(self, h, key_mask):
        B, L, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(d, dim=-1)
        sh = lambda t: t.view(B, L, self.heads, d // self.heads).transpose(1, 2)
        o = F.scaled_dot_product_attention(sh(q), sh(k), sh(v), attn_mask=key_mask[:, None, None, :])
        h = h + self.out(o.transpose(1, 2).reshape(B, L, d))
        return h + self.fc2(gelu(self.fc1(self.ln2(h))))


class TextEncoder(nn.Module):
    def __init__(self, vocab_size, d=128, layers=2, heads=4, ffn=512, max_tokens=16):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d)
        self.pos_emb = nn.Embedding(max_tokens, d)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.layers = nn.ModuleList([TextLayer(d, heads, ffn) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=EPS)

    def forward(self, ids, mask):
        """ids [B, L] int64, mask [B, L] bool (True = valid). Returns tokens [B, L, d], pooled [B, d]."""
        L = ids.shape[1]
        h = self.tok_emb(ids) + self.pos_emb.weight[:L][None]
        for layer in self.layers:
            h = layer(h, mask)
        out = self.ln_f(h)
        m = mask.to(out.dtype)[..., None]
        pooled = (out * m).sum(1) / m.sum(1)
        return out, pooled


# ----------------------------------------------------------------------------------------------
# DiT (mmdit)
def timestep_embedding(t, dim=256):
    """t in [0, 1] -> [B, dim], sinusoid of s = t*1000, cos first."""
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half).to(t.device, t.dtype)
    s = (t * 1000.0)[:, None] * f[None]
    return torch.cat([torch.cos(s), torch.sin(s)], dim=-1)


def rope_tables(grid, axes, theta=10000.0, dtype=torch.float32):
    """grid (T', H', W') -> cos, sin [N, head_dim/2] for interleaved pairs, tokens in t,h,w order."""
    Tg, Hg, Wg = grid
    pt, ph, pw = torch.meshgrid(torch.arange(Tg), torch.arange(Hg), torch.arange(Wg), indexing="ij")
    pos = [pt.reshape(-1), ph.reshape(-1), pw.reshape(-1)]
    angles = []
    for p, a in zip(pos, axes):
        j = torch.arange(a // 2, dtype=torch.float64)
        inv = theta ** (-2.0 * j / a)
        angles.append(p.double()[:, None] * inv[None])
    ang = torch.cat(angles, dim=1)
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def apply_rope(x, cos, sin):
    """x [B, heads, N, hd]; dims (2j, 2j+1) rotate by angle j."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack([r0, r1], dim=-1).flatten(-2)


class Attn(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.q_norm = nn.Module()
        self.q_norm.weight = nn.Parameter(torch.ones(d // heads))
        self.k_norm = nn.Module()
        self.k_norm.weight = nn.Parameter(torch.ones(d // heads))
        self.out = nn.Linear(d, d)


class FFN(nn.Module):
    def __init__(self, d, ffn):
        super().__init__()
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)

    def forward(self, x):
        return self.fc2(gelu(self.fc1(x)))


class SiluMLP(nn.Module):
    def __init__(self, din, d):
        super().__init__()
        self.fc1 = nn.Linear(din, d)
        self.fc2 = nn.Linear(d, d)

    def forward(self, x):
        return self.fc2(F.silu(self.fc1(x)))


class MMDiTBlock(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.d, self.heads = d, heads
        self.x_mod = nn.Linear(d, 6 * d)
        self.c_mod = nn.Linear(d, 6 * d)
        for m in (self.x_mod, self.c_mod):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self.x_attn = Attn(d, heads)
        self.c_attn = Attn(d, heads)
        self.x_ffn = FFN(d, ffn)
        self.c_ffn = FFN(d, ffn)

    def _qkv(self, s, mod, attn):
        B, n, d = s.shape
        a = (1 + mod[1][:, None]) * layer_norm(s) + mod[0][:, None]
        q, k, v = attn.qkv(a).split(d, dim=-1)
        sh = lambda t: t.view(B, n, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = sh(q), sh(k), sh(v)
        return rms_norm(q, attn.q_norm.weight), rms_norm(k, attn.k_norm.weight), v

    def forward(self, x, ctx, cvec, rope, ctx_mask):
        B, N, d = x.shape
        L = ctx.shape[1]
        sc = F.silu(cvec)
        mx = self.x_mod(sc).chunk(6, dim=-1)
        mc = self.c_mod(sc).chunk(6, dim=-1)
        qx, kx, vx = self._qkv(x, mx, self.x_attn)
        qc, kc, vc = self._qkv(ctx, mc, self.c_attn)
        qx = apply_rope(qx, *rope)
        kx = apply_rope(kx, *rope)
        q = torch.cat([qx, qc], 2)
        k = torch.cat([kx, kc], 2)
        v = torch.cat([vx, vc], 2)
        mask = None
        if ctx_mask is not None:
            full = torch.cat([torch.ones(B, N, dtype=torch.bool, device=x.device), ctx_mask], 1)
            mask = full[:, None, None, :]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        o = o.transpose(1, 2).reshape(B, N + L, d)
        ox, oc = o[:, :N], o[:, N:]
        x = x + mx[2][:, None] * self.x_attn.out(ox)
        ctx = ctx + mc[2][:, None] * self.c_attn.out(oc)
        x = x + mx[5][:, None] * self.x_ffn((1 + mx[4][:, None]) * layer_norm(x) + mx[3][:, None])
        ctx = ctx + mc[5][:, None] * self.c_ffn((1 + mc[4][:, None]) * layer_norm(ctx) + mc[3][:, None])
        return x, ctx


class DiT(nn.Module):
    def __init__(self, in_channels=9, out_channels=8, patch=(2, 2, 2), d=192, heads=6, layers=6,
                 ffn=768, freq_dim=256, d_txt=128, rope_axes=(8, 12, 12), rope_theta=10000.0):
        super().__init__()
        self.patch, self.d, self.heads = tuple(patch), d, heads
        self.in_channels, self.out_channels = in_channels, out_channels
        self.freq_dim, self.rope_axes, self.rope_theta = freq_dim, tuple(rope_axes), rope_theta
        assert sum(rope_axes) == d // heads
        pv = patch[0] * patch[1] * patch[2]
        self.x_embed = nn.Linear(in_channels * pv, d)
        self.t_embed = SiluMLP(freq_dim, d)
        self.pooled_embed = SiluMLP(d_txt, d)
        nn.init.normal_(self.t_embed.fc1.weight, std=0.02)
        nn.init.normal_(self.t_embed.fc2.weight, std=0.02)
        self.ctx_embed = nn.Linear(d_txt, d)
        self.blocks = nn.ModuleList([MMDiTBlock(d, heads, ffn) for _ in range(layers)])
        self.final_mod = nn.Linear(d, 2 * d)
        self.final = nn.Linear(d, out_channels * pv)
        for m in (self.final_mod, self.final):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self._rope_cache = {}

    def patchify(self, x):
        B, C, T, H, W = x.shape
        pt, ph, pw = self.patch
        x = x.view(B, C, T // pt, pt, H // ph, ph, W // pw, pw)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # B T' H' W' C pt ph pw
        return x.reshape(B, (T // pt) * (H // ph) * (W // pw), C * pt * ph * pw)

    def unpatchify(self, y, T, H, W):
        B = y.shape[0]
        pt, ph, pw = self.patch
        C = self.out_channels
        y = y.view(B, T // pt, H // ph, W // pw, C, pt, ph, pw)
        y = y.permute(0, 4, 1, 5, 2, 6, 3, 7)  # B C T' pt H' ph W' pw
        return y.reshape(B, C, T, H, W)

    def forward(self, x, t, txt_tokens, txt_pooled, ctx_mask=None):
        """x [B, C+1, T, H, W], t [B] in [0,1], txt_tokens [B, L, d_txt], txt_pooled [B, d_txt],
        ctx_mask [B, L] bool or None. Returns v [B, C, T, H, W]."""
        B, _, T, H, W = x.shape
        grid = (T // self.patch[0], H // self.patch[1], W // self.patch[2])
        key = (grid, x.dtype, x.device)
        if key not in self._rope_cache:
            cos, sin = rope_tables(grid, self.rope_axes, self.rope_theta, x.dtype)
            self._rope_cache[key] = (cos.to(x.device), sin.to(x.device))
        rope = self._rope_cache[key]
        h = self.x_embed(self.patchify(x))
        cvec = self.t_embed(timestep_embedding(t, self.freq_dim).to(x.dtype)) + self.pooled_embed(txt_pooled)
        ctx = self.ctx_embed(txt_tokens)
        for blk in self.blocks:
            h, ctx = blk(h, ctx, cvec, rope, ctx_mask)
        shift, scale = self.final_mod(F.silu(cvec)).chunk(2, dim=-1)
        y = self.final((1 + scale[:, None]) * layer_norm(h) + shift[:, None])
        return self.unpatchify(y, T, H, W)


# ----------------------------------------------------------------------------------------------
# autoencoder (per frame)
class Decoder(nn.Module):
    def __init__(self, latent_channels=8, channels=(64, 64, 32, 16)):
        super().__init__()
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))
        self.conv_in = nn.Conv2d(latent_channels, channels[0], 3, padding=1)
        self.up = nn.ModuleList([nn.Conv2d(channels[j], channels[j + 1], 3, padding=1)
                                 for j in range(len(channels) - 1)])
        self.conv_out = nn.Conv2d(channels[-1], 3, 3, padding=1)

    def forward(self, z, normalized=True):
        """z [B, C, h, w] (normalized latents if normalized) -> RGB [B, 3, 8h, 8w] in ~[-1, 1]."""
        if normalized:
            z = z * self.latent_std[None, :, None, None] + self.latent_mean[None, :, None, None]
        h = F.silu(self.conv_in(z))
        for conv in self.up:
            h = F.silu(conv(F.interpolate(h, scale_factor=2, mode="nearest")))
        return self.conv_out(h)


class Encoder(nn.Module):
    def __init__(self, latent_channels=8, ch=(32, 64, 64, 64)):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down = nn.ModuleList([nn.Conv2d(ch[j], ch[j + 1], 4, stride=2, padding=1)
                                   for j in range(len(ch) - 1)])
        self.mid = nn.Conv2d(ch[-1], ch[-1], 3, padding=1)
        self.conv_out = nn.Conv2d(ch[-1], latent_channels, 3, padding=1)

    def forward(self, x):
        h = F.silu(self.conv_in(x))
        for conv in self.down:
            h = F.silu(conv(h))
        h = F.silu(self.mid(h))
        return self.conv_out(h)
