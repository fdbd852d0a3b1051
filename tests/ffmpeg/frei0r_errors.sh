#!/usr/bin/env bash
# Failures that frei0r cannot report (an unsupported size, a missing model, an empty prompt, a bad
# parameter): ffmpeg neither crashes nor fails, the plugin prints exactly one clear line on stderr,
# and every frame is the red/black checker (8-pixel squares, red at the top-left).
source "$(dirname "$0")/lib.sh"
need_program ffmpeg
export FREI0R_PATH=${DS_FREI0R_DIR:?}

model=$TMP/model
make_model "$model"

# expect_marked NAME SIZE FILTER_PARAMS MESSAGE_PATTERN
expect_marked() {
  local name=$1 size=$2 params=$3 pattern=$4 width=${2%x*}
  run_checked "$TMP/$name.err" ffmpeg -nostdin -v error -y -f lavfi \
    -i "frei0r_src=size=$size:framerate=8:filter_name=ditstream:filter_params=$params" \
    -frames:v 3 -f rawvideo -pix_fmt rgba "$TMP/$name.rgba" || fail "$name: ffmpeg failed: $(cat "$TMP/$name.err")"
  local lines
  lines=$(grep -c '^ditstream frei0r: error: ' "$TMP/$name.err" || true)
  expect_eq "$name: error lines on stderr" 1 "$lines"
  grep -q "$pattern" "$TMP/$name.err" || fail "$name: message does not match '$pattern': $(cat "$TMP/$name.err")"
  expect_eq "$name: pixel (0,0)" "255 0 0 255" "$(pixel "$TMP/$name.rgba" "$width" 0 0)"
  expect_eq "$name: pixel (8,0)" "0 0 0 255" "$(pixel "$TMP/$name.rgba" "$width" 8 0)"
  # Below row 0, FFmpeg 5.1 skews frames whose width is not a multiple of 16 (the reason for that error).
  if [ $((width % 16)) -eq 0 ]; then
    expect_eq "$name: pixel (8,8)" "255 0 0 255" "$(pixel "$TMP/$name.rgba" "$width" 8 8)"
  fi
  echo "$name: $(grep '^ditstream frei0r: error: ' "$TMP/$name.err")"
}

expect_marked width40 40x64 "$model" "width 40 is not a multiple of 16"
expect_marked model_missing 64x64 "$TMP/no-such-model|a red circle" "no-such-model"
expect_marked prompt_empty 64x64 "$model||" "the prompt is empty"
expect_marked prompt_file_missing 64x64 "$model|||||||||||prompt-file=$TMP/none.txt" "cannot read prompt-file"
expect_marked options_unknown 64x64 "$model|||||||||||colour=red" "unknown parameter 'colour'"
expect_marked steps_out_of_range 64x64 "$model||||5000" "steps"
# A size the frei0r check accepts but the model does not (multiple of 16, above its maximum).
expect_marked size_unsupported 512x64 "$model" "width 512 is not supported"
echo "frei0r_errors: ok"
