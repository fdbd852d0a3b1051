"""Sample the exported demo model in PyTorch and evaluate prompt adherence.

    python tools/demo_model/sample.py --model models/demo [--steps 16 --guidance 4] [--grid out.png]

Loads models/demo/{config.json, model.safetensors, vocab.txt} (so it also checks the export),
generates one clip per prompt with flow-matching Euler + classifier-free guidance, decodes it,
and measures for each clip the hue of the object pixels (saturated and bright pixels, the
background is dark and desaturated) and the centroid displacement first -> last frame.
Prints colour / motion (and a rough shape) accuracy.
"""
import argparse
import colorsys
import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from model import DiT, Decoder, TextEncoder  # noqa: E402


def load_model(model_dir, dtype=torch.float32):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    vocab = open(os.path.join(model_dir, cfg["text"]["vocab"])).read().split("\n")
    vocab = [w for w in vocab if w != ""]
    t, d, lat = cfg["text"], cfg["dit"], cfg["latent"]
    text = TextEncoder(len(vocab), t["dim"], t["layers"], t["heads"], t["ffn"], t["max_tokens"])
    dit = DiT(d["in_channels"], d["out_channels"], d["patch"], d["dim"], d["heads"], d["layers"],
              d["ffn"], d["freq_dim"], t["dim"], d["rope_axes"], d["rope_theta"])
    dec = Decoder(lat["channels"], cfg["decoder"]["channels"])
    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    for prefix, mod in (("text.", text), ("dit.", dit), ("decoder.", dec)):
        sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        mod.load_state_dict(sub, strict=True)
        mod.to(dtype).eval()
    return cfg, vocab, text, dit, dec


@torch.no_grad()
def encode_text(text, vocab, prompts, max_tokens):
    ids = [data.tokenize(p, vocab, max_tokens) for p in prompts]
    L = max(len(i) for i in ids)
    t = torch.zeros(len(ids), L, dtype=torch.int64)
    m = torch.zeros(len(ids), L, dtype=torch.bool)
    for b, i in enumerate(ids):
        t[b, :len(i)] = torch.tensor(i)
        m[b, :len(i)] = True
    tok, pooled = text(t, m)
    return tok, pooled, m


def sigmas_for(steps, shift):
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    if shift != 1.0:
        s = shift * s / (1 + (shift - 1) * s)
    return s


@torch.no_grad()
def generate(cfg, vocab, text, dit, prompts, steps, guidance, shift=1.0, seed=0, prefix=None,
             prefix_frames=0):
    """Returns normalized latents [B, C, T, 8, 8]. prefix: [B, C, k, 8, 8] clean first frames."""
    B = len(prompts)
    C = cfg["latent"]["channels"]
    T = cfg["video"]["frames"]
    hh = cfg["video"]["height"] // cfg["latent"]["downsample"]
    ww = cfg["video"]["width"] // cfg["latent"]["downsample"]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, T, hh, ww, generator=g)
    mask = torch.zeros(B, 1, T, hh, ww)
    if prefix is not None:
        mask[:, :, :prefix_frames] = 1.0
    mt = cfg["text"]["max_tokens"]
    tok_c, pool_c, m_c = encode_text(text, vocab, prompts, mt)
    tok_u, pool_u, m_u = encode_text(text, vocab, [""] * B, mt)
    L = max(tok_c.shape[1], tok_u.shape[1])
    pad = lambda t, n: torch.cat([t, t.new_zeros(t.shape[0], n - t.shape[1], *t.shape[2:])], 1)
    tok = torch.cat([pad(tok_c, L), pad(tok_u, L)])
    msk = torch.cat([pad(m_c, L), pad(m_u, L)])
    pool = torch.cat([pool_c, pool_u])
    sig = sigmas_for(steps, shift)
    for i in range(steps):
        if prefix is not None:
            x[:, :, :prefix_frames] = prefix
        xin = torch.cat([x, mask], 1)
        t = torch.full((2 * B,), float(sig[i]))
        v = dit(torch.cat([xin, xin]), t, tok, pool, msk)
        v = v[B:] + guidance * (v[:B] - v[B:])
        x = x + float(sig[i + 1] - sig[i]) * v
    if prefix is not None:
        x[:, :, :prefix_frames] = prefix
    return x


@torch.no_grad()
def decode(dec, z):
    """normalized latents [B, C, T, h, w] -> uint8 frames [B, T, H, W, 3]."""
    B, C, T, h, w = z.shape
    y = dec(z.permute(0, 2, 1, 3, 4).reshape(B * T, C, h, w))
    px = torch.clamp((y + 1) * 127.5, 0, 255).round().to(torch.uint8)
    return px.view(B, T, 3, 8 * h, 8 * w).permute(0, 1, 3, 4, 2).numpy()


# ----------------------------------------------------------------------------------------------
def object_mask(frame):
    f = frame.astype(np.float32) / 255.0
    mx, mn = f.max(-1), f.min(-1)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    return (sat > 0.45) & (mx > 0.4)


def analyse(frames):
    """frames uint8 [T, H, W, 3] -> dict(color, motion, shape, dx, dy, hue)."""
    masks = [object_mask(fr) for fr in frames]
    allpix = np.concatenate([frames[i][masks[i]] for i in range(len(frames))]) / 255.0
    res = {"color": None, "motion": None, "shape": None, "dx": 0.0, "dy": 0.0, "hue": None}
    if len(allpix) < 20:
        return res
    hues = np.array([colorsys.rgb_to_hsv(*p)[0] for p in allpix[:: max(1, len(allpix) // 2000)]])
    ang = hues * 2 * np.pi
    hue = (np.degrees(np.arctan2(np.sin(ang).mean(), np.cos(ang).mean())) + 360) % 360
    res["hue"] = hue
    names = list(data.COLORS)
    dist = [min(abs(hue - data.COLORS[n]), 360 - abs(hue - data.COLORS[n])) for n in names]
    res["color"] = names[int(np.argmin(dist))]
    valid = [i for i, m in enumerate(masks) if m.sum() >= 15]
    if len(valid) >= 2:
        def cen(i):
            ys, xs = np.nonzero(masks[i])
            return xs.mean(), ys.mean()
        x0, y0 = cen(valid[0])
        x1, y1 = cen(valid[-1])
        dx, dy = x1 - x0, y1 - y0
        res["dx"], res["dy"] = dx, dy
        if max(abs(dx), abs(dy)) < 5.0:
            res["motion"] = "static"
        elif abs(dx) > abs(dy):
            res["motion"] = "right" if dx > 0 else "left"
        else:
            res["motion"] = "down" if dy > 0 else "up"
    # shape: fill ratio of the bounding box in the frame where the object is largest and not
    # touching the border
    best = None
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(xs) < 30 or xs.min() == 0 or ys.min() == 0 or xs.max() == 63 or ys.max() == 63:
            continue
        if best is None or len(xs) > best[0]:
            best = (len(xs), (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    if best:
        fill = best[0] / best[1]
        res["shape"] = "square" if fill > 0.88 else ("circle" if fill > 0.64 else "triangle")
    return res


def eval_prompts(n_repeat=1):
    """Every colour x shape x motion would be 90; take a balanced Latin-square-like 30 subset."""
    colors, shapes, motions = list(data.COLORS), data.SHAPES, data.MOTIONS
    out = []
    for i in range(30 * n_repeat):
        c = colors[i % 6]
        m = motions[i % 5]
        s = shapes[(i // 5) % 3]
        out.append((c, s, m))
    return out


def save_grid(frames, path, labels=None):
    import matplotlib
    matplotlib.use("Agg")
    from PIL import Image
    B, T = frames.shape[:2]
    sel = list(range(0, T, 3)) + [T - 1]
    g = np.zeros((B * 66, len(sel) * 66, 3), np.uint8)
    for b in range(B):
        for j, t in enumerate(sel):
            g[b * 66:b * 66 + 64, j * 66:j * 66 + 64] = frames[b, t]
    Image.fromarray(g).save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--shift", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", default=None, help="write a PNG contact sheet of the samples")
    ap.add_argument("--prompt", default=None, help="sample only this prompt")
    ap.add_argument("--continuation", action="store_true",
                    help="also test prefix continuation: a second clip from the last frames")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, vocab, text, dit, dec = load_model(args.model)
    sp = cfg["sampling"]
    steps = args.steps or sp["steps"]
    guidance = args.guidance if args.guidance is not None else sp["guidance"]
    shift = args.shift if args.shift is not None else sp["shift"]
    if args.prompt:
        triples = None
        prompts = [args.prompt]
    else:
        triples = eval_prompts()
        prompts = [data.caption_for(c, s, m) for c, s, m in triples]
    t0 = time.time()
    frames = []
    lats = []
    for i in range(0, len(prompts), 10):
        z = generate(cfg, vocab, text, dit, prompts[i:i + 10], steps, guidance, shift, seed=args.seed + i)
        lats.append(z)
        frames.append(decode(dec, z))
    frames = np.concatenate(frames)
    lat = torch.cat(lats)
    dt = time.time() - t0
    print(f"sampled {len(prompts)} clips, steps {steps}, guidance {guidance}, shift {shift}: "
          f"{dt:.1f}s ({dt / len(prompts):.2f}s/clip incl. decode, 2 forwards per step)")
    if args.grid:
        save_grid(frames, args.grid)
    if triples is None:
        r = analyse(frames[0])
        print(prompts[0], r)
        return
    ok_c = ok_m = ok_s = 0
    for (c, s, m), p, fr in zip(triples, prompts, frames):
        r = analyse(fr)
        ok_c += r["color"] == c
        ok_m += r["motion"] == m
        ok_s += r["shape"] == s
        if args.verbose or r["color"] != c or r["motion"] != m:
            hue = f"{r['hue']:.0f}" if r["hue"] is not None else "-"
            print(f"  {p:40s} -> color {r['color']} (hue {hue}) motion {r['motion']} "
                  f"(dx {r['dx']:.1f} dy {r['dy']:.1f}) shape {r['shape']}")
    n = len(triples)
    print(f"colour accuracy {ok_c}/{n} = {ok_c / n:.0%}   motion accuracy {ok_m}/{n} = {ok_m / n:.0%}   "
          f"shape (rough) {ok_s}/{n} = {ok_s / n:.0%}")
    if args.continuation:
        k = cfg["sampling"]["continuation_prefix_frames"]
        z2 = generate(cfg, vocab, text, dit, prompts, steps, guidance, shift, seed=args.seed + 999,
                      prefix=lat[:, :, -k:], prefix_frames=k)
        f2 = decode(dec, z2)
        okc = okm = 0
        for (c, s, m), fr in zip(triples, f2):
            r = analyse(fr)
            okc += r["color"] == c
            okm += r["motion"] == m
        f2f = f2.astype(np.float32)
        jump = np.abs(f2f[:, k] - f2f[:, k - 1]).mean()  # last given frame -> first generated one
        step = np.abs(f2f[:, 1:] - f2f[:, :-1]).mean()
        print(f"continuation: colour {okc}/{n} motion {okm}/{n}; mean |frame {k} - frame {k - 1}| at "
              f"the prefix boundary {jump:.2f} vs mean frame-to-frame change {step:.2f} (0-255)")
        if args.grid:
            save_grid(f2, args.grid.replace(".png", "_cont.png"))


if __name__ == "__main__":
    main()
