#!/usr/bin/env python3
"""i420_matches_rgb.py RGB_RAW YUV_RAW WIDTH HEIGHT KR KB [nv12]: every frame of a raw YUV420P file
(or NV12 with the last argument: U and V interleaved in one plane) is,
within one level, limited-range Y'CbCr with luma weights KR, KB (BT.601: 0.299 0.114; BT.709:
0.2126 0.0722) computed in floating point from the same frame of a raw RGB24 file, each chroma
sample from the mean of its 2x2 block. Exit 0 when all match, 1 with the first mismatch otherwise.
An independent check of the engine's integer conversion (the standard library only)."""
import sys


def main():
    rgb_path, yuv_path = sys.argv[1], sys.argv[2]
    w, h = int(sys.argv[3]), int(sys.argv[4])
    kr, kb = float(sys.argv[5]), float(sys.argv[6])
    nv12 = len(sys.argv) > 7 and sys.argv[7] == "nv12"
    kg = 1 - kr - kb
    rgb_all = open(rgb_path, "rb").read()
    yuv_all = open(yuv_path, "rb").read()
    cw, ch = (w + 1) // 2, (h + 1) // 2
    rgb_size, yuv_size = w * h * 3, w * h + 2 * cw * ch
    frames = len(rgb_all) // rgb_size
    if frames == 0 or len(rgb_all) != frames * rgb_size or len(yuv_all) != frames * yuv_size:
        print(f"sizes: {len(rgb_all)} RGB bytes, {len(yuv_all)} YUV bytes for {w}x{h}")
        return 1

    def luma(r, g, b):
        return kr * r + kg * g + kb * b

    for f in range(frames):
        rgb = rgb_all[f * rgb_size:(f + 1) * rgb_size]
        yuv = yuv_all[f * yuv_size:(f + 1) * yuv_size]
        for i in range(w * h):
            want = 16 + 219 * luma(*rgb[3 * i:3 * i + 3]) / 255
            if abs(yuv[i] - want) > 1:
                print(f"frame {f}: Y at pixel {i} is {yuv[i]}, expected {want:.2f}")
                return 1
        for cy in range(ch):
            for cx in range(cw):
                px = [(x, y) for y in range(2 * cy, min(2 * cy + 2, h)) for x in range(2 * cx, min(2 * cx + 2, w))]
                r, g, b = (sum(rgb[3 * (y * w + x) + c] for x, y in px) / len(px) for c in range(3))
                want_u = 128 + 224 * (b - luma(r, g, b)) / (2 * (1 - kb)) / 255
                want_v = 128 + 224 * (r - luma(r, g, b)) / (2 * (1 - kr)) / 255
                k = cy * cw + cx
                if nv12:
                    u, v = yuv[w * h + 2 * k], yuv[w * h + 2 * k + 1]
                else:
                    u, v = yuv[w * h + k], yuv[w * h + cw * ch + k]
                if abs(u - want_u) > 1 or abs(v - want_v) > 1:
                    print(f"frame {f}: U, V of block {cx},{cy} are {u}, {v}, expected {want_u:.2f}, {want_v:.2f}")
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
