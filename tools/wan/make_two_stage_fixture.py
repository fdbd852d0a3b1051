"""Parity fixture for Wan2.2's two-stage text-to-video pipeline (T2V-A14B), computed with diffusers.

    /tmp/venv-wan/bin/python tools/wan/make_two_stage_fixture.py --fixtures tests/fixtures/wan

Run after make_fixtures.py (same venv, tools/wan/requirements.txt). It builds tiny_a14b/ next to
tiny/: the same tokenizer, text encoder, VAE, scheduler and first transformer (symbolic links into
tiny/), a second random transformer of the same shape as transformer_2/ (the low-noise expert,
stored in bf16), and a model_index.json that declares it with boundary_ratio 0.875, as the
published Wan2.2-T2V-A14B-Diffusers folder does. Then diffusers' WanPipeline runs that folder in
float32 for 4 UniPC steps with guidance 5 for the high-noise stage and guidance_scale_2 3 for the
low-noise one (the boundary falls between the second and third step), from stored initial latents,
and the latents after every step go to two_stage.safetensors, the case to two_stage.json.
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file

SEED = 20251127
TEXT_LEN = 16
BOUNDARY_RATIO = 0.875


def log(*a):
    print("[wan-two-stage]", *a, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="tests/fixtures/wan")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    from diffusers import WanPipeline, WanTransformer3DModel

    tiny = os.path.join(args.fixtures, "tiny")
    out = os.path.join(args.fixtures, "tiny_a14b")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name in ("tokenizer", "text_encoder", "transformer", "vae", "scheduler"):
        os.symlink(os.path.join("..", "tiny", name), os.path.join(out, name))

    log("transformer_2")
    first = WanTransformer3DModel.from_pretrained(os.path.join(tiny, "transformer"), torch_dtype=torch.float32)
    second = WanTransformer3DModel.from_config(first.config)
    with torch.no_grad():
        for name, p in second.named_parameters():
            # Weights of the first expert's scale, redrawn: a different model, outputs of similar size.
            ref = dict(first.named_parameters())[name]
            std = float(ref.std()) if ref.numel() > 1 else 0.1
            p.copy_(torch.randn_like(p) * std + (ref.mean() if "norm" in name or "scale_shift" in name else 0))
    second.to(torch.bfloat16).save_pretrained(os.path.join(out, "transformer_2"))

    with open(os.path.join(tiny, "model_index.json")) as f:
        index = json.load(f)
    index["transformer_2"] = ["diffusers", "WanTransformer3DModel"]
    index["boundary_ratio"] = BOUNDARY_RATIO
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")

    log("pipeline in float32")
    pipe = WanPipeline.from_pretrained(out, dtype=torch.float32)
    assert pipe.transformer_2 is not None and pipe.config.boundary_ratio == BOUNDARY_RATIO
    pc = {"prompt": "a red fox runs through the snow at dawn", "negative_prompt": "", "height": 32, "width": 48,
          "num_frames": 9, "steps": 4, "guidance": 5.0, "guidance_2": 3.0, "boundary_ratio": BOUNDARY_RATIO}
    g = torch.Generator().manual_seed(SEED)
    latents = torch.randn(1, 16, 3, 4, 6, generator=g)
    steps, timesteps = [], []

    def keep(p, i, t, kw):
        steps.append(kw["latents"].clone())
        timesteps.append(float(t))
        return {}

    with torch.no_grad():
        pipe(prompt=pc["prompt"], negative_prompt=pc["negative_prompt"], height=pc["height"], width=pc["width"],
             num_frames=pc["num_frames"], num_inference_steps=pc["steps"], guidance_scale=pc["guidance"],
             guidance_scale_2=pc["guidance_2"], latents=latents.clone(), max_sequence_length=TEXT_LEN,
             output_type="latent", callback_on_step_end=keep)
    boundary = BOUNDARY_RATIO * pipe.scheduler.config.num_train_timesteps
    pc["timesteps"] = timesteps
    pc["low_noise_steps"] = sum(t < boundary for t in timesteps)
    assert 0 < pc["low_noise_steps"] < pc["steps"], timesteps
    log("timesteps", timesteps, "boundary", boundary)

    save_file({"two_stage.latents": latents[0].contiguous(),
               "two_stage.step_latents": torch.stack([s[0] for s in steps]).contiguous()},
              os.path.join(args.fixtures, "two_stage.safetensors"))
    with open(os.path.join(args.fixtures, "two_stage.json"), "w") as f:
        json.dump(pc, f, indent=1)
        f.write("\n")
    log("wrote", out)


if __name__ == "__main__":
    main()
