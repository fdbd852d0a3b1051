"""Parity fixture for the Wan VAE's spatially tiled decode (core/wan/wan_vae_tiling.cpp).

    /tmp/venv-wan/bin/python tools/wan/make_vae_tiling_fixture.py --out tests/fixtures/wan

Loads the committed tiny VAE (tests/fixtures/wan/tiny/vae, written by make_fixtures.py) in float32,
turns on diffusers' tiling with small tiles so that a 72x88 video needs a 3x3 grid of tiles (edge
tiles narrower than the stride, unequal blend widths across and down), and records what
AutoencoderKLWan.tiled_decode returns for a seeded 3-frame latent. The untiled decode of the same
latent is not stored: the C++ test decodes it with the streamed decoder (checked against diffusers
by the other VAE fixture) to see that the tiles really are blended, not a no-op.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

SEED = 20261126
# Sample-space tile sizes (multiples of 8): blend extents are 8 rows and 16 columns.
TILE = {"tile_sample_min_height": 32, "tile_sample_stride_height": 24,
        "tile_sample_min_width": 48, "tile_sample_stride_width": 32}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from diffusers import AutoencoderKLWan

    torch.manual_seed(SEED)
    vae = AutoencoderKLWan.from_pretrained(os.path.join(args.out, "tiny", "vae"), torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(SEED)
    z = torch.randn(1, 16, 3, 9, 11, generator=g)
    with torch.no_grad():
        plain = vae.decode(z, return_dict=False)[0]
        vae.enable_tiling(**TILE)
        tiled = vae.decode(z, return_dict=False)[0]
    diff = (tiled - plain).abs().max().item()
    print(f"[wan-vae-tiling] video {tuple(tiled.shape)}, tiled vs untiled max |diff| {diff:.4g}")
    assert diff > 1e-3, "the tiles must overlap somewhere that changes the frames"
    save_file({"z": z[0].contiguous(), "video": tiled[0].contiguous()},
              os.path.join(args.out, "vae_tiled.safetensors"))
    with open(os.path.join(args.out, "vae_tiled.json"), "w") as f:
        json.dump(TILE, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
