"""Procedural text-to-video clips for the ditstream demo model.

Every clip is 16 frames of 64x64 RGB at 8 fps showing one anti-aliased object (circle, square or
triangle) of one of six well separated hues on a dark, desaturated, softly varying background,
moving left / right / up / down by 1.5-3 px per frame or standing still. Everything is
deterministic from the integer seed.

    clip, caption, meta = make_clip(seed)      # clip: float32 [16, 64, 64, 3] in [0, 1]
"""
import colorsys
import re

import numpy as np

FRAMES, H, W, FPS = 16, 64, 64, 8

# name -> hue in degrees (60 degrees apart); the second name of a pair is a caption synonym.
COLORS = {
    "red": 0.0,
    "yellow": 60.0,
    "green": 120.0,
    "cyan": 180.0,
    "blue": 240.0,
    "magenta": 300.0,
}
COLOR_SYNONYMS = {"magenta": ["magenta", "purple"]}
SHAPES = ["circle", "square", "triangle"]
MOTIONS = ["left", "right", "up", "down", "static"]
# unit displacement per frame in image coordinates (x right, y down)
MOTION_DIR = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
              "static": (0.0, 0.0)}

VOCAB = ["<pad>", "<start>", "a", "an",
         "red", "yellow", "green", "cyan", "blue", "magenta", "purple",
         "circle", "square", "triangle",
         "moving", "going", "to", "the", "left", "right", "up", "down",
         "that", "is", "static", "standing", "still"]


def tokenize(text, vocab=VOCAB, max_tokens=16):
    """docs/model_format.md tokenizer: lower-case, split on non [a-z0-9], unknown words dropped."""
    index = {w: i for i, w in enumerate(vocab)}
    words = [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]
    ids = [1] + [index[w] for w in words if w in index]
    return ids[:max_tokens]


def caption_for(color, shape, motion, rng=None):
    """Canonical caption (rng=None) or a random synonym variant."""
    cname = color
    if rng is not None and color in COLOR_SYNONYMS:
        cname = COLOR_SYNONYMS[color][rng.integers(len(COLOR_SYNONYMS[color]))]
    if motion == "static":
        if rng is None or rng.random() < 0.5:
            return f"a {cname} {shape} that is static"
        return f"a {cname} {shape} standing still"
    if rng is None or rng.random() < 0.75:
        return f"a {cname} {shape} moving {motion}"
    return f"a {cname} {shape} going to the {motion}"


def hue_rgb(hue_deg, sat, val):
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, sat, val), dtype=np.float32)


def _coverage(shape, xx, yy, cx, cy, r):
    """Anti-aliased coverage in [0, 1] from an approximate signed distance (pixels)."""
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        d = np.sqrt(dx * dx + dy * dy) - r
    elif shape == "square":
        s = r * 0.89  # similar area to the circle
        d = np.maximum(np.abs(dx), np.abs(dy)) - s
    else:  # upward pointing equilateral triangle centred on its centroid
        R = r * 1.35  # circumradius
        # three half-planes with outward normals at -90, 30, 150 degrees; inradius R/2
        n = [(0.0, 1.0), (0.8660254, -0.5), (-0.8660254, -0.5)]
        d = np.max(np.stack([dx * a + dy * b for a, b in n]), axis=0) - R * 0.5
    return np.clip(0.5 - d, 0.0, 1.0)


def make_background(rng):
    hue = rng.uniform(0, 360)
    c0 = hue_rgb(hue, rng.uniform(0.0, 0.3), rng.uniform(0.04, 0.22))
    c1 = hue_rgb(hue + rng.uniform(-40, 40), rng.uniform(0.0, 0.3), rng.uniform(0.04, 0.22))
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    u = ((xx - W / 2) * np.cos(ang) + (yy - H / 2) * np.sin(ang)) / (W * 0.75) + 0.5
    u = np.clip(u, 0, 1)[..., None]
    return (1 - u) * c0 + u * c1  # [H, W, 3]


def make_clip(seed, color=None, shape=None, motion=None):
    """Returns (clip float32 [F, H, W, 3] in [0, 1], caption, meta dict)."""
    rng = np.random.default_rng(seed)
    color = color or list(COLORS)[rng.integers(len(COLORS))]
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    motion = motion or MOTIONS[rng.integers(len(MOTIONS))]
    r = rng.uniform(6.0, 11.0)  # radius: 12-22 px objects
    speed = rng.uniform(1.5, 3.0) if motion != "static" else 0.0
    ux, uy = MOTION_DIR[motion]
    total = speed * (FRAMES - 1)
    # position along the motion axis: mostly starting "behind" so that it crosses the frame,
    # sometimes anywhere (so that it partly leaves the frame)
    if motion == "static":
        cx, cy = rng.uniform(10, 54), rng.uniform(10, 54)
    else:
        if rng.random() < 0.7:
            a = rng.uniform(6, max(8.0, 58 - 0.6 * total))
        else:
            a = rng.uniform(4, 60)
        p = rng.uniform(10, 54)
        if motion == "right":
            cx, cy = a, p
        elif motion == "left":
            cx, cy = W - a, p
        elif motion == "down":
            cx, cy = p, a
        else:
            cx, cy = p, H - a
    obj = hue_rgb(COLORS[color] + rng.uniform(-6, 6), rng.uniform(0.8, 1.0), rng.uniform(0.85, 1.0))
    bg = make_background(rng)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    xx += 0.5
    yy += 0.5
    clip = np.empty((FRAMES, H, W, 3), np.float32)
    for f in range(FRAMES):
        cov = _coverage(shape, xx, yy, cx + ux * speed * f, cy + uy * speed * f, r)[..., None]
        clip[f] = (1 - cov) * bg + cov * obj
    caption = caption_for(color, shape, motion, rng)
    meta = dict(color=color, shape=shape, motion=motion, speed=speed, start=(cx, cy), radius=r)
    return clip, caption, meta


if __name__ == "__main__":
    import sys
    c, cap, m = make_clip(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(cap, m, c.shape, c.min(), c.max())
