#!/usr/bin/env bash
# The whole Wan2.1 pipeline on a GPU, through the C API the CLI, ditsrc and the FFmpeg filter use:
# make_random_wan writes a folder with random weights of the 1.3B's widths (real transformer and
# VAE, a one-layer text encoder), then bench_clip generates one 480x832x81 clip with device=cuda
# and the default guidance (two transformer forwards per step) in I420 (made on the GPU, as ditsrc
# asks for it before x264enc), reporting each stage, while
# nvidia-smi samples the GPU's memory. Runs the bundle bench/pack_gpu_e2e.sh made.
#
#   bench/gpu_e2e.sh [steps (default 50)]
# Environment: DS_E2E_BUNDLE (default .gpu_deps/e2e.tar.xz), DS_E2E_WORK (default /tmp/ds-e2e),
# DS_E2E_LAYERS (transformer blocks, default 30), DS_E2E_SET (more "--set name=value" options for
# bench_clip, after the defaults; a smoke test off a GPU: DS_E2E_SET="--set device=cpu --set
# width=64 --set height=64 --set frames=5").
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STEPS=${1:-50}
BUNDLE=${DS_E2E_BUNDLE:-$ROOT/.gpu_deps/e2e.tar.xz}
WORK=${DS_E2E_WORK:-/tmp/ds-e2e}
[ -f "$BUNDLE" ] || { echo "gpu_e2e: no bundle at $BUNDLE (bench/pack_gpu_e2e.sh makes it)" >&2; exit 1; }
mkdir -p "$WORK"
tar -C "$WORK" -xJf "$BUNDLE"
CUDA_LIBS=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && CUDA_LIBS=$CUDA_LIBS:$d
done
export LD_LIBRARY_PATH=$WORK/e2e/lib$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
if [ ! -f "$WORK/wan/transformer/config.json" ]; then
  start=$(date +%s)
  "$WORK/e2e/make_random_wan" "$ROOT" "$WORK/wan" --layers "${DS_E2E_LAYERS:-30}" || exit 1
  echo "make_random_wan: $(( $(date +%s) - start )) s"
fi
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$WORK/memory.log" 2>/dev/null &
SAMPLER=$!
idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
# shellcheck disable=SC2086  # DS_E2E_SET is a list of options
"$WORK/e2e/bench_clip" "$WORK/wan" --runs 1 --threads "$(nproc)" --format i420 --set device=cuda --set width=832 \
  --set height=480 --set frames=81 --set steps="$STEPS" ${DS_E2E_SET:-}
rc=$?
kill $SAMPLER 2>/dev/null
peak=$(sort -n "$WORK/memory.log" | tail -1)
echo "GPU memory: peak ${peak} MiB in use during the run (${idle} MiB before it)"
exit $rc
