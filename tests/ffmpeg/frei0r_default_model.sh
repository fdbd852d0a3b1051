#!/usr/bin/env bash
# The frei0r plugin with no model parameter loads the bundled model "demo" (skipped until it exists):
# two frames at its native size with one denoising step, and no error line.
source "$(dirname "$0")/lib.sh"
need_program ffmpeg
need_program python3
export FREI0R_PATH=${DS_FREI0R_DIR:?}
config=${DS_SOURCE_ROOT:?}/models/demo/config.json
[ -f "$config" ] || skip "the bundled model is not there yet ($config)"

size=$(python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))["video"]; print("%dx%d" % (v["width"], v["height"]))' "$config")
[ $((${size%x*} % 16)) -eq 0 ] || skip "the demo model's native width is not a multiple of 16 ($size)"
# Parameter order: model|prompt|negative-prompt|frames|steps (README); empty model = the default.
run_checked "$TMP/err" ffmpeg -nostdin -v error -y -f lavfi \
  -i "frei0r_src=size=$size:framerate=8:filter_name=ditstream:filter_params=|a red circle moving right|||1" \
  -frames:v 2 -f rawvideo -pix_fmt rgba "$TMP/out.rgba" || fail "ffmpeg: $(cat "$TMP/err")"
grep -q "ditstream frei0r: error" "$TMP/err" && fail "error with the default model: $(cat "$TMP/err")"
expect_eq "bytes written" $((2 * ${size%x*} * ${size#*x} * 4)) "$(stat -c %s "$TMP/out.rgba")"
echo "frei0r_default_model: ok"
