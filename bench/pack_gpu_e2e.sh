#!/usr/bin/env bash
# Packs what bench/gpu_e2e.sh runs, for a GPU machine that cannot build the project (no meson, no
# package registry): bench_clip and make_random_wan from a meson build with CUDA, libditstream, and
# the shared libraries they load that such a machine may lack (OpenBLAS, sentencepiece, fmt, …).
# glibc, libstdc++ and the CUDA libraries are the GPU machine's own.
#
#   bench/pack_gpu_e2e.sh <meson build dir> [archive (default .gpu_deps/e2e.tar.xz)]
#
# .gpu_deps/ is ignored by git; hand the archive to the GPU machine with the working tree (the
# device tool's `carry`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?usage: bench/pack_gpu_e2e.sh <meson build dir> [archive]}
OUT=${2:-$ROOT/.gpu_deps/e2e.tar.xz}
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/e2e/lib" "$(dirname "$OUT")"
for bin in bench/bench_clip bench/make_random_wan; do
  [ -x "$BUILD/$bin" ] || { echo "pack_gpu_e2e: $BUILD/$bin is missing (build the project first)" >&2; exit 1; }
  cp "$BUILD/$bin" "$STAGE/e2e/"
done
ldd "$BUILD/bench/bench_clip" "$BUILD/bench/make_random_wan" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/cuda|libcudart|libcublas' |
  while read -r lib; do cp -L "$lib" "$STAGE/e2e/lib/"; done
strip "$STAGE"/e2e/bench_clip "$STAGE"/e2e/make_random_wan "$STAGE"/e2e/lib/libditstream.so.* 2>/dev/null || true
tar -C "$STAGE" -cJf "$OUT" e2e
echo "packed $(find "$STAGE/e2e/lib" -type f | wc -l) libraries and 2 programs into $OUT ($(du -h "$OUT" | cut -f1))"
