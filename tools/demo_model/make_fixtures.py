"""Parity fixtures for the C++ engine, computed from the exported model folder.

    python tools/demo_model/make_fixtures.py --model models/demo --out tests/fixtures/demo_parity

The forward passes here are a second, functional float64 implementation written directly from
docs/model_format.md that reads nothing but config.json / model.safetensors / vocab.txt (it does
not use model.py); it is cross-checked against the training modules of model.py before writing.
"""
import argparse
import json
import math
import os
import re
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

D = torch.float64
EPS = 1e-6


def tokenize(prompt, vocab, max_tokens):
    index = {w: i for i, w in enumerate(vocab)}
    words = [w for w in re.split(r"[^a-z0-9]+", prompt.lower()) if w]
    return ([1] + [index[w] for w in words if w in index])[:max_tokens]


def lin(W, pfx, x):
    return x @ W[pfx + ".weight"].T + W[pfx + ".bias"]


def ln(x, w=None, b=None):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + EPS)
    if w is not None:
        y = y * w + b
    return y


def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x * torch.sigmoid(x)


def rms(x, w):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * w


def attention(q, k, v, heads):
    """q [Nq, d], k/v [Nk, d] -> [Nq, d]; heads are contiguous slices."""
    d = q.shape[-1]
    hd = d // heads
    outs = []
    for h in range(heads):
        sl = slice(h * hd, (h + 1) * hd)
        a = torch.softmax(q[:, sl] @ k[:, sl].T / math.sqrt(hd), dim=-1)
        outs.append(a @ v[:, sl])
    return torch.cat(outs, -1)


def text_forward(W, cfg, ids):
    tc = cfg["text"]
    L = len(ids)
    h = W["text.tok_emb.weight"][torch.tensor(ids)] + W["text.pos_emb.weight"][:L]
    d = tc["dim"]
    for i in range(tc["layers"]):
        p = f"text.layers.{i}."
        a = ln(h, W[p + "ln1.weight"], W[p + "ln1.bias"])
        qkv = lin(W, p + "qkv", a)
        q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
        h = h + lin(W, p + "out", attention(q, k, v, tc["heads"]))
        h = h + lin(W, p + "fc2", gelu(lin(W, p + "fc1", ln(h, W[p + "ln2.weight"], W[p + "ln2.bias"]))))
    out = ln(h, W["text.ln_f.weight"], W["text.ln_f.bias"])
    return out, out.mean(0)


def rope_rotate(x, positions, axes, theta, heads):
    """x [N, d]; rotate each head's slices. positions [N, 3] ints."""
    N, d = x.shape
    hd = d // heads
    x = x.clone().view(N, heads, hd)
    off = 0
    for ax, a in enumerate(axes):
        for j in range(a // 2):
            ang = positions[:, ax].to(D) * theta ** (-2.0 * j / a)
            c, s = torch.cos(ang)[:, None], torch.sin(ang)[:, None]
            i0, i1 = off + 2 * j, off + 2 * j + 1
            x0, x1 = x[:, :, i0].clone(), x[:, :, i1].clone()
            x[:, :, i0] = x0 * c - x1 * s
            x[:, :, i1] = x0 * s + x1 * c
        off += a
    return x.view(N, d)


def dit_forward(W, cfg, x, t, txt_tokens, txt_pooled):
    """x [C+1, T, H, W] -> v [C, T, H, W]."""
    dc = cfg["dit"]
    d, heads = dc["dim"], dc["heads"]
    pt, ph, pw = dc["patch"]
    Cin, T, H, Wd = x.shape
    Tg, Hg, Wg = T // pt, H // ph, Wd // pw
    # 1. patchify, tokens (t,h,w) row-major, vector (c, dt, dy, dx)
    toks, pos = [], []
    for a in range(Tg):
        for b in range(Hg):
            for c in range(Wg):
                toks.append(x[:, a * pt:(a + 1) * pt, b * ph:(b + 1) * ph, c * pw:(c + 1) * pw].reshape(-1))
                pos.append((a, b, c))
    xt = torch.stack(toks)
    pos = torch.tensor(pos)
    s = lin(W, "dit.x_embed", xt)
    # 2. conditioning
    half = dc["freq_dim"] // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=D) / half)
    arg = torch.tensor(t * 1000.0, dtype=D) * f
    emb = torch.cat([torch.cos(arg), torch.sin(arg)])
    cvec = lin(W, "dit.t_embed.fc2", silu(lin(W, "dit.t_embed.fc1", emb))) + \
        lin(W, "dit.pooled_embed.fc2", silu(lin(W, "dit.pooled_embed.fc1", txt_pooled)))
    # 3. text stream
    ctx = lin(W, "dit.ctx_embed", txt_tokens)
    N = s.shape[0]
    hd = d // heads
    for i in range(dc["layers"]):
        p = f"dit.blocks.{i}."
        streams = {"x": s, "c": ctx}
        mods, qs, ks, vs = {}, {}, {}, {}
        for name, h in streams.items():
            m = lin(W, p + name + "_mod", silu(cvec))
            mods[name] = [m[j * d:(j + 1) * d] for j in range(6)]
            shift1, scale1 = mods[name][0], mods[name][1]
            a = (1 + scale1) * ln(h) + shift1
            qkv = lin(W, p + name + "_attn.qkv", a)
            q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
            n = h.shape[0]
            q = rms(q.view(n, heads, hd), W[p + name + "_attn.q_norm.weight"]).view(n, d)
            k = rms(k.view(n, heads, hd), W[p + name + "_attn.k_norm.weight"]).view(n, d)
            if name == "x":
                q = rope_rotate(q, pos, dc["rope_axes"], dc["rope_theta"], heads)
                k = rope_rotate(k, pos, dc["rope_axes"], dc["rope_theta"], heads)
            qs[name], ks[name], vs[name] = q, k, v
        q = torch.cat([qs["x"], qs["c"]])
        k = torch.cat([ks["x"], ks["c"]])
        v = torch.cat([vs["x"], vs["c"]])
        o = attention(q, k, v, heads)
        outs = {"x": o[:N], "c": o[N:]}
        new = {}
        for name, h in streams.items():
            sh1, sc1, g1, sh2, sc2, g2 = mods[name]
            h = h + g1 * lin(W, p + name + "_attn.out", outs[name])
            h = h + g2 * lin(W, p + name + "_ffn.fc2",
                             gelu(lin(W, p + name + "_ffn.fc1", (1 + sc2) * ln(h) + sh2)))
            new[name] = h
        s, ctx = new["x"], new["c"]
    m = lin(W, "dit.final_mod", silu(cvec))
    shift, scale = m[:d], m[d:]
    y = lin(W, "dit.final", (1 + scale) * ln(s) + shift)  # [N, C*pt*ph*pw]
    C = dc["out_channels"]
    out = torch.zeros(C, T, H, Wd, dtype=D)
    for n, (a, b, c) in enumerate(pos.tolist()):
        out[:, a * pt:(a + 1) * pt, b * ph:(b + 1) * ph, c * pw:(c + 1) * pw] = y[n].view(C, pt, ph, pw)
    return out


def conv3x3(x, w, b):
    return torch.nn.functional.conv2d(x[None], w, b, padding=1)[0]


def decoder_forward(W, cfg, z):
    """z [C, h, w] normalized latent -> [3, 8h, 8w]."""
    z = z * W["decoder.latent_std"][:, None, None] + W["decoder.latent_mean"][:, None, None]
    h = silu(conv3x3(z, W["decoder.conv_in.weight"], W["decoder.conv_in.bias"]))
    j = 0
    while f"decoder.up.{j}.weight" in W:
        h = h.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
        h = silu(conv3x3(h, W[f"decoder.up.{j}.weight"], W[f"decoder.up.{j}.bias"]))
        j += 1
    return conv3x3(h, W["decoder.conv_out.weight"], W["decoder.conv_out.bias"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--out", default="tests/fixtures/demo_parity")
    ap.add_argument("--prompt", default="a red circle moving right")
    ap.add_argument("--no-check", action="store_true", help="skip the cross-check with model.py")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    vocab = [w for w in open(os.path.join(args.model, cfg["text"]["vocab"])).read().split("\n") if w]
    W = {k: v.to(D) for k, v in load_file(os.path.join(args.model, "model.safetensors")).items()}
    ids = tokenize(args.prompt, vocab, cfg["text"]["max_tokens"])
    with torch.no_grad():
        tok, pooled = text_forward(W, cfg, ids)
        C = cfg["latent"]["channels"]
        T = cfg["video"]["frames"]
        hh = cfg["video"]["height"] // cfg["latent"]["downsample"]
        ww = cfg["video"]["width"] // cfg["latent"]["downsample"]
        g = torch.Generator().manual_seed(20240601)
        fx = {"prompt_ids": torch.tensor(ids, dtype=torch.int32),
              "text_tokens": tok.float(), "text_pooled": pooled.float()}
        ts = [1.0, 0.7, 0.3, 0.05]
        kprefix = cfg["sampling"]["continuation_prefix_frames"]
        cases = []
        for kk, t in enumerate(ts):
            x = torch.randn(C + 1, T, hh, ww, generator=g, dtype=D)
            x[C] = 0.0
            if kk == 2:  # continuation case: mask = 1 on the first frames
                x[C, :kprefix] = 1.0
            x = x.float().to(D)  # the stored float32 values are the exact inputs
            v = dit_forward(W, cfg, x, t, tok, pooled)
            fx[f"x_in_{kk}"] = x.float()
            fx[f"v_out_{kk}"] = v.float()
            cases.append((x, t, v))
        zin = torch.randn(C, hh, ww, generator=g, dtype=D).float().to(D)
        dout = decoder_forward(W, cfg, zin)
        fx["dec_in"] = zin.float()
        fx["dec_out"] = dout.float()
    fx["t_values"] = torch.tensor(ts, dtype=torch.float32)

    if not args.no_check:  # cross-check against the training modules
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from sample import load_model
        _, _, text, dit, dec = load_model(args.model, dtype=D)
        with torch.no_grad():
            it = torch.tensor([ids])
            t2, p2 = text(it, torch.ones_like(it, dtype=torch.bool))
            e_t = (t2[0] - tok).abs().max().item()
            e_v = max((dit(x[None], torch.tensor([t], dtype=D), t2, p2)[0] - v).abs().max().item()
                      for x, t, v in cases)
            e_d = (dec(zin[None])[0] - dout).abs().max().item()
        print(f"cross-check vs model.py (float64): text {e_t:.2e} dit {e_v:.2e} decoder {e_d:.2e}")
        assert max(e_t, e_v, e_d) < 1e-8, "reference and training modules disagree"

    os.makedirs(args.out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in fx.items()}, os.path.join(args.out, "fixtures.safetensors"))
    meta = {"prompt": args.prompt, "prompt_ids": ids, "t_values": ts,
            "cases": [{"x_in": f"x_in_{k}", "v_out": f"v_out_{k}", "t": t,
                       "prefix_mask_frames": kprefix if k == 2 else 0} for k, t in enumerate(ts)],
            "decoder": {"in": "dec_in", "out": "dec_out", "note": "before clamp/rounding"},
            "model": args.model, "computed_in": "float64, stored float32",
            "stats": {k: {"shape": list(v.shape), "absmax": float(v.float().abs().max())} for k, v in fx.items()}}
    with open(os.path.join(args.out, "fixtures.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    sz = os.path.getsize(os.path.join(args.out, "fixtures.safetensors"))
    print(f"wrote {args.out}/fixtures.safetensors ({sz / 1e6:.2f} MB) and fixtures.json")


if __name__ == "__main__":
    main()
