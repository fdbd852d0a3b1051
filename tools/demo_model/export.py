"""Export the trained demo model to the docs/model_format.md folder layout.

    python tools/demo_model/export.py --work /tmp/ditstream_demo_work --out models/demo [--raw]

Writes config.json, model.safetensors (float32, only text.* / dit.* / decoder.*), vocab.txt,
loss.png (from the training loss log) and copies the loss log next to it.
"""
import argparse
import glob
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402


def export_tensors(work, cfg, use_ema=True):
    ae = torch.load(os.path.join(work, "ae.pt"))
    caches = sorted(glob.glob(os.path.join(work, "latents_*.pt")), key=os.path.getmtime)
    cache = torch.load(caches[-1])
    ck = torch.load(os.path.join(work, "dit_ckpt.pt"), weights_only=False, map_location="cpu")
    out = {}
    if use_ema:
        for k, v in ck["ema"].items():
            out[k] = v.float()
    else:
        for k, v in ck["text"].items():
            out["text." + k] = v.float()
        for k, v in ck["dit"].items():
            out["dit." + k] = v.float()
    for k, v in ae["dec"].items():
        if k in ("latent_mean", "latent_std"):
            continue
        out["decoder." + k] = v.float()
    out["decoder.latent_mean"] = cache["mean"].float()
    out["decoder.latent_std"] = cache["std"].float()
    return {k: v.contiguous().clone() for k, v in out.items()}, ck["step"]


def plot_loss(work, out_dir):
    src = os.path.join(work, "dit_loss.txt")
    if not os.path.exists(src):
        return
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = np.loadtxt(src, ndmin=2)
    # after a --resume the steps since the last checkpoint are logged twice: keep the last ones
    keep = {}
    for i, s in enumerate(a[:, 0]):
        keep[int(s)] = i
    a = a[sorted(keep.values())]
    steps, loss = a[:, 0], a[:, 1]
    k = 50
    sm = np.convolve(loss, np.ones(k) / k, mode="valid") if len(loss) > k else loss
    plt.figure(figsize=(7, 4))
    plt.plot(steps, loss, alpha=0.25, label="loss (per step)")
    plt.plot(steps[len(steps) - len(sm):], sm, label=f"moving average ({k})")
    plt.xlabel("step")
    plt.ylabel("flow-matching MSE (normalized latents)")
    plt.yscale("log")
    plt.title("ditstream demo DiT training loss")
    plt.legend()
    plt.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(os.path.join(out_dir, "loss.png"), dpi=90)
    plt.close()
    np.savetxt(os.path.join(out_dir, "dit_loss.txt"), a, fmt=["%d", "%.6f", "%.4e", "%.4f", "%.1f"],
               header="step loss lr grad_norm seconds_since_last_log_line")


def format_config(cfg):
    """One line per section, like docs/model_format.md."""
    lines = [f'  "{k}": {json.dumps(v)}' for k, v in cfg.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def export(work, out_dir, cfg, use_ema=True, sampling=None):
    os.makedirs(out_dir, exist_ok=True)
    tensors, step = export_tensors(work, cfg, use_ema)
    cfg = json.loads(json.dumps(cfg))
    old = os.path.join(out_dir, "config.json")
    if os.path.exists(old):  # keep tuned sampling defaults
        try:
            cfg["sampling"] = json.load(open(old))["sampling"]
        except Exception:
            pass
    if sampling:
        cfg["sampling"].update(sampling)
    save_file(tensors, os.path.join(out_dir, "model.safetensors"),
              metadata={"format": "ditstream-demo", "step": str(step), "weights": "ema" if use_ema else "raw"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(format_config(cfg))
    with open(os.path.join(out_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(data.VOCAB) + "\n")
    plot_loss(work, out_dir)
    n = sum(v.numel() for v in tensors.values())
    print(f"exported {len(tensors)} tensors, {n/1e6:.2f}M params, step {step} -> {out_dir}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.environ.get("DEMO_WORK", "/tmp/ditstream_demo_work"))
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    ap.add_argument("--steps", type=int, default=None, help="sampling.steps to write")
    ap.add_argument("--guidance", type=float, default=None, help="sampling.guidance to write")
    args = ap.parse_args()
    cfg = json.load(open(os.path.join(args.work, "train_cfg.json")))
    sampling = {}
    if args.steps:
        sampling["steps"] = args.steps
    if args.guidance:
        sampling["guidance"] = args.guidance
    export(args.work, args.out, cfg, not args.raw, sampling or None)


if __name__ == "__main__":
    main()
