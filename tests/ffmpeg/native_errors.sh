#!/usr/bin/env bash
# Bad input to the native source fails the filter's init: ffmpeg exits with an error (no crash), the
# engine's one-line reason is logged, and no output is written.
source "$(dirname "$0")/lib.sh"
ffmpeg_native=${DS_FFMPEG_NATIVE:?}

model=$TMP/model
make_model "$model"

# expect_failure NAME FILTER_ARGS MESSAGE_PATTERN
expect_failure() {
  local status=0
  run_checked "$TMP/$1.err" "$ffmpeg_native" -nostdin -v error -y -f lavfi -i "ditstream=$2" \
    -f framemd5 "$TMP/$1.md5" || status=$?
  [ "$status" -ne 0 ] || fail "$1: ffmpeg succeeded"
  grep -q "$3" "$TMP/$1.err" || fail "$1: no '$3' in: $(cat "$TMP/$1.err")"
  [ -s "$TMP/$1.md5" ] && fail "$1: frames were written"
  echo "$1 (status $status): $(grep "$3" "$TMP/$1.err" | head -n 1)"
}

expect_failure size_unsupported "model=$model:size=40x40" "width 40 is not supported"
expect_failure model_missing "model=$TMP/no-such-model" "no-such-model"
expect_failure prompt_empty "model=$model:prompt=" "The prompt is empty"
expect_failure device_unknown "model=$model:device=tpu" 'unknown device "tpu"'
# A GPU index inside a filtergraph, where ':' separates options: quoted and escaped, device='cuda\:1'
# (the README's spelling).
expect_failure device_bad_gpu_index "model=$model:device='cuda\\:x'" 'the GPU index after "cuda:"'
# cuda:0 reaches the engine whole: refused for want of a GPU (or a CUDA build), not as a name.
expect_failure device_gpu_index_reaches_engine "model=$model:device='cuda\\:0'" 'device "cuda:0"'
expect_failure steps_out_of_range "model=$model:steps=5000" "out of range"
# libavfilter's generic `threads` of the filter is the engine's thread count, checked by the engine
expect_failure threads_out_of_range "model=$model:threads=2000" "'threads': 2000 is outside"
echo "native_errors: ok"
