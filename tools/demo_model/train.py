"""Train the ditstream demo model (CPU friendly) and export it.

Stages (each resumable, outputs in --work, a cache folder that is not committed):
  1. ae     : per-frame autoencoder (encoder training-only, decoder exported)
  2. cache  : encode --clips procedural clips with the encoder, per-channel latent mean/std
  3. dit    : text encoder + MMDiT flow-matching training on the normalized cached latents,
              CFG prompt dropout, prefix-frame continuation, EMA, checkpoints every few minutes
  4. export : models/demo/{config.json, model.safetensors, vocab.txt, loss.png, train_log.txt}

    python tools/demo_model/train.py --out models/demo            # all stages
    python tools/demo_model/train.py --out models/demo --resume   # continue after an interruption
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from model import DiT, Decoder, Encoder, TextEncoder  # noqa: E402

DEFAULT_CFG = {
    "family": "demo",
    "video": {"width": 64, "height": 64, "frames": 16, "fps": 8},
    "latent": {"channels": 8, "downsample": 8},
    "text": {"vocab": "vocab.txt", "max_tokens": 16, "dim": 128, "layers": 2, "heads": 4, "ffn": 512},
    "dit": {"block_kind": "mmdit", "in_channels": 9, "out_channels": 8, "patch": [2, 2, 2],
            "dim": 192, "heads": 6, "layers": 6, "ffn": 768, "freq_dim": 256,
            "pos": "rope3d", "rope_axes": [8, 12, 12], "rope_theta": 10000.0,
            "qk_norm": "rms", "prefix_mask_channel": True},
    "decoder": {"channels": [64, 64, 32, 16]},
    "sampling": {"steps": 16, "guidance": 4.0, "shift": 1.0, "continuation_prefix_frames": 4},
}


def log(msg, path=None):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def build_models(cfg):
    t, d, lat = cfg["text"], cfg["dit"], cfg["latent"]
    text = TextEncoder(len(data.VOCAB), t["dim"], t["layers"], t["heads"], t["ffn"], t["max_tokens"])
    dit = DiT(d["in_channels"], d["out_channels"], d["patch"], d["dim"], d["heads"], d["layers"],
              d["ffn"], d["freq_dim"], t["dim"], d["rope_axes"], d["rope_theta"])
    dec = Decoder(lat["channels"], cfg["decoder"]["channels"])
    return text, dit, dec


# ----------------------------------------------------------------------------------------------
def ae_batch(rng, n_clips, frames_per_clip):
    xs = []
    for _ in range(n_clips):
        clip, _, _ = data.make_clip(int(rng.integers(1 << 62)))
        idx = rng.choice(data.FRAMES, frames_per_clip, replace=False)
        xs.append(clip[idx])
    x = torch.from_numpy(np.concatenate(xs)).permute(0, 3, 1, 2) * 2 - 1  # [B,3,64,64] in [-1,1]
    return x


def train_ae(args, cfg):
    """Phase 1: --ae-minutes from scratch (lr 2e-3); phase 2 (if --ae-more > 0): --ae-more minutes
    more from the phase-1 weights (lr 1e-3). Both with a time-based cosine schedule."""
    path = os.path.join(args.work, "ae.pt")
    for phase in (1, 2):
        done = torch.load(path).get("phase", 1) if os.path.exists(path) else 0
        if done >= phase or (phase == 2 and not args.ae_more):
            log(f"ae: phase {phase} found in {path}, skipping", args.log)
            continue
        _train_ae_phase(args, cfg, path, phase)


def _train_ae_phase(args, cfg, path, phase):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    enc = Encoder(cfg["latent"]["channels"])
    dec = Decoder(cfg["latent"]["channels"], cfg["decoder"]["channels"])
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    t0 = time.time()
    step = 0
    budget = args.ae_minutes * 60
    peak = 2e-3
    if phase == 2:  # continue training (second phase)
        ae = torch.load(path)
        enc.load_state_dict(ae["enc"])
        dec.load_state_dict(ae["dec"])
        step = ae["steps"]
        rng = np.random.default_rng(args.seed + step)
        budget = args.ae_more * 60
        peak = 1e-3
        log(f"ae: continuing from step {step} for {args.ae_more} min", args.log)
    while True:
        el = time.time() - t0
        if el > budget:
            break
        lr = peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, el / budget))))
        for g in opt.param_groups:
            g["lr"] = lr
        x = ae_batch(rng, 16, 2)
        z = enc(x)
        y = dec(z, normalized=False)
        # up-weight the (saturated, bright) object pixels, they are a small part of the image
        sat = (x.max(1, keepdim=True).values - x.min(1, keepdim=True).values) > 0.6
        w = 1.0 + 6.0 * sat.float()
        err = y - x
        # image-gradient L1 term for sharper shape edges (phase 2 only)
        gx = (y[..., :, 1:] - y[..., :, :-1]) - (x[..., :, 1:] - x[..., :, :-1])
        gy = (y[..., 1:, :] - y[..., :-1, :]) - (x[..., 1:, :] - x[..., :-1, :])
        loss = (w * err.pow(2)).mean() + 0.1 * (w * err.abs()).mean() + 1e-4 * z.pow(2).mean()
        if phase == 2:
            loss = loss + 0.2 * (gx.abs().mean() + gy.abs().mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0:
            log(f"ae step {step} loss {loss.item():.5f} mse {err.pow(2).mean().item():.5f} "
                f"lr {lr:.2e} t {el:.0f}s", args.log)
        step += 1
    torch.save({"enc": enc.state_dict(), "dec": dec.state_dict(), "steps": step, "phase": phase}, path)
    log(f"ae: phase {phase} done at step {step}, saved {path}", args.log)


# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def build_cache(args, cfg):
    path = os.path.join(args.work, f"latents_{args.clips}.pt")
    if os.path.exists(path):
        log("cache: found " + path, args.log)
        return torch.load(path)
    ae = torch.load(os.path.join(args.work, "ae.pt"))
    enc = Encoder(cfg["latent"]["channels"])
    enc.load_state_dict(ae["enc"])
    enc.eval()
    C = cfg["latent"]["channels"]
    lat = torch.empty(args.clips, C, data.FRAMES, 8, 8, dtype=torch.float16)
    meta = torch.empty(args.clips, 3, dtype=torch.int64)
    colors = list(data.COLORS)
    t0 = time.time()
    bs = 16
    for i in range(0, args.clips, bs):
        n = min(bs, args.clips - i)
        clips = []
        for j in range(n):
            seed = 1_000_000 + i + j
            clip, _, m = data.make_clip(seed)
            clips.append(clip)
            meta[i + j] = torch.tensor([colors.index(m["color"]), data.SHAPES.index(m["shape"]),
                                        data.MOTIONS.index(m["motion"])])
        x = torch.from_numpy(np.stack(clips)).reshape(n * data.FRAMES, data.H, data.W, 3)
        x = x.permute(0, 3, 1, 2) * 2 - 1
        z = enc(x).view(n, data.FRAMES, C, 8, 8).permute(0, 2, 1, 3, 4)
        lat[i:i + n] = z.half()
        if i % 1600 == 0:
            log(f"cache {i}/{args.clips} t {time.time() - t0:.0f}s", args.log)
    zf = lat.float()
    mean = zf.mean(dim=(0, 2, 3, 4))
    std = zf.std(dim=(0, 2, 3, 4))
    out = {"lat": lat, "meta": meta, "mean": mean, "std": std}
    torch.save(out, path)
    log(f"cache: {args.clips} clips in {time.time() - t0:.0f}s mean {mean.tolist()} std {std.tolist()}",
        args.log)
    return out


# ----------------------------------------------------------------------------------------------
def encode_prompts(texts, max_tokens=16):
    ids = torch.zeros(len(texts), max_tokens, dtype=torch.int64)
    mask = torch.zeros(len(texts), max_tokens, dtype=torch.bool)
    for i, t in enumerate(texts):
        tok = data.tokenize(t, data.VOCAB, max_tokens)
        ids[i, :len(tok)] = torch.tensor(tok)
        mask[i, :len(tok)] = True
    return ids, mask


REVERSED = [data.MOTIONS.index(x) for x in ("right", "left", "down", "up", "static")]


def lr_at(step, total, peak, warmup=100):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def train_dit(args, cfg, cache):
    ckpt_path = os.path.join(args.work, "dit_ckpt.pt")
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    text, dit, _ = build_models(cfg)
    text.to(dev)
    dit.to(dev)
    params = list(text.parameters()) + list(dit.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    ema = {k: v.detach().clone() for k, v in list(text.state_dict(prefix="text.").items()) +
           list(dit.state_dict(prefix="dit.").items())}
    step = 0
    rng = np.random.default_rng(args.seed + 7)
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, weights_only=False, map_location=dev)
        text.load_state_dict(ck["text"])
        dit.load_state_dict(ck["dit"])
        opt.load_state_dict(ck["opt"])
        ema = ck["ema"]
        step = ck["step"]
        rng = np.random.default_rng(args.seed + 7 + step)
        log(f"dit: resumed at step {step}", args.log)
    lat_all = cache["lat"]
    mean, std = cache["mean"], cache["std"]
    meta = cache["meta"]
    colors = list(data.COLORS)
    nparams = sum(p.numel() for p in dit.parameters())
    log(f"dit: {nparams/1e6:.2f}M params, text {sum(p.numel() for p in text.parameters())/1e6:.2f}M, "
        f"steps {args.steps}, batch {args.batch}", args.log)
    mv = mean.view(1, -1, 1, 1, 1)
    sv = std.view(1, -1, 1, 1, 1)
    t_last_ck = time.time()
    t_start = time.time()
    t0 = time.time()
    loss_ema = None
    while step < args.steps:
        if args.stop_step and step >= args.stop_step:
            log(f"dit: stopped at step {step} of {args.steps} by --stop-step", args.log)
            save_ckpt(ckpt_path, text, dit, opt, ema, step)
            break
        if args.max_minutes and time.time() - t_start > args.max_minutes * 60:
            log(f"dit: stopped at step {step} of {args.steps} by --max-minutes {args.max_minutes} "
                f"(learning-rate schedule not finished)", args.log)
            save_ckpt(ckpt_path, text, dit, opt, ema, step)
            break
        idx = torch.from_numpy(rng.integers(0, lat_all.shape[0], args.batch))
        x0 = (lat_all[idx].float() - mv) / sv
        B = x0.shape[0]
        # time reversal is exact for a per-frame autoencoder: it swaps left/right and up/down
        rev = rng.random(args.batch) < 0.5
        if rev.any():
            r = torch.from_numpy(rev)
            x0[r] = x0[r].flip(2)
        texts = []
        for b, i in enumerate(idx.tolist()):
            c, s, m = meta[i].tolist()
            if rev[b]:
                m = REVERSED[m]
            if rng.random() < args.p_uncond:
                texts.append("")
            else:
                texts.append(data.caption_for(colors[c], data.SHAPES[s], data.MOTIONS[m], rng))
        ids, mask = encode_prompts(texts)
        # logit-normal t with a uniform mix
        t = torch.sigmoid(torch.from_numpy(rng.normal(0.0, 1.0, B)).float())
        uni = torch.from_numpy(rng.random(B) < 0.1)
        t = torch.where(uni, torch.from_numpy(rng.random(B)).float(), t)
        eps = torch.from_numpy(rng.standard_normal(x0.shape).astype(np.float32))
        xt = (1 - t.view(B, 1, 1, 1, 1)) * x0 + t.view(B, 1, 1, 1, 1) * eps
        target = eps - x0
        T = x0.shape[2]
        pmask = torch.zeros(B, 1, T, 1, 1)
        for b in range(B):
            if rng.random() < args.p_prefix:
                k = 2 if rng.random() < 0.5 else 4
                pmask[b, :, :k] = 1.0
        xt = pmask * x0 + (1 - pmask) * xt
        xin = torch.cat([xt, pmask.expand(B, 1, T, 8, 8)], dim=1)
        lr = lr_at(step, args.steps, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        xin, t, target, pmask = xin.to(dev), t.to(dev), target.to(dev), pmask.to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            tok, pooled = text(ids.to(dev), mask.to(dev))
            v = dit(xin, t, tok, pooled, mask.to(dev))
        v = v.float()
        w = (1 - pmask)
        loss = ((v - target).pow(2) * w).sum() / (w.sum() * x0.shape[1] * 64)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            decay = min(args.ema, (1 + step) / (10 + step))
            cur = dict(list(text.state_dict(prefix="text.").items()) + list(dit.state_dict(prefix="dit.").items()))
            for k, e in ema.items():
                e.mul_(decay).add_(cur[k].detach(), alpha=1 - decay)
        li = loss.item()
        loss_ema = li if loss_ema is None else 0.98 * loss_ema + 0.02 * li
        with open(os.path.join(args.work, "dit_loss.txt"), "a") as f:
            f.write(f"{step} {li:.6f} {lr:.6e} {gn.item():.4f} {time.time() - t0:.1f}\n")
        if step % 10 == 0:
            log(f"dit step {step} loss {li:.4f} avg {loss_ema:.4f} gnorm {gn.item():.3f} lr {lr:.2e} "
                f"{(time.time() - t0) / 10:.2f}s/step", args.log)
            t0 = time.time()
        if time.time() - t_last_ck > args.ckpt_minutes * 60 or step == args.steps:
            save_ckpt(ckpt_path, text, dit, opt, ema, step)
            t_last_ck = time.time()
    return ema


def save_ckpt(path, text, dit, opt, ema, step):
    tmp = path + ".tmp"
    torch.save({"text": text.state_dict(), "dit": dit.state_dict(), "opt": opt.state_dict(),
                "ema": ema, "step": step}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--work", default=os.environ.get("DEMO_WORK", "/tmp/ditstream_demo_work"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ae-minutes", type=float, default=7.0)
    ap.add_argument("--ae-more", type=float, default=0.0,
                    help="continue training an existing autoencoder for this many minutes")
    ap.add_argument("--clips", type=int, default=12000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--p-uncond", type=float, default=0.1)
    ap.add_argument("--p-prefix", type=float, default=0.3)
    ap.add_argument("--ckpt-minutes", type=float, default=4.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--device", default="cpu", help="torch device of the DiT stage (cpu, cuda)")
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast for the DiT stage's forward (weights, optimizer and EMA stay float32)")
    ap.add_argument("--stop-step", type=int, default=0,
                    help="stop the DiT stage at this step, the schedule still spanning --steps")
    ap.add_argument("--max-minutes", type=float, default=0.0,
                    help="stop the DiT stage after this many minutes (0: run all --steps)")
    ap.add_argument("--stage", default="all", choices=["all", "ae", "cache", "dit", "export"])
    ap.add_argument("--dim", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--heads", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    args.log = os.path.join(args.out, "train_log.txt")
    cfg = json.loads(json.dumps(DEFAULT_CFG))
    if args.dim:
        cfg["dit"]["dim"] = args.dim
        cfg["dit"]["ffn"] = 4 * args.dim
    if args.heads:
        cfg["dit"]["heads"] = args.heads
    if args.layers:
        cfg["dit"]["layers"] = args.layers
    cfg_path = os.path.join(args.work, "train_cfg.json")
    if (args.resume or args.stage == "export") and os.path.exists(cfg_path):
        cfg = json.load(open(cfg_path))
    else:
        json.dump(cfg, open(cfg_path, "w"), indent=1)
    if args.stage in ("all", "ae") or (args.stage == "cache" and
                                       not os.path.exists(os.path.join(args.work, "ae.pt"))):
        train_ae(args, cfg)
    if args.stage in ("all", "cache", "dit"):
        cache = build_cache(args, cfg)
    if args.stage in ("all", "dit"):
        train_dit(args, cfg, cache)
    if args.stage in ("all", "export", "dit"):
        import export
        export.export(args.work, args.out, cfg)


if __name__ == "__main__":
    main()
