# Shared by the tests in this folder (sourced). Each test runs the real programs (ffmpeg, ffprobe,
# gst-launch-1.0) as a user would and checks their outputs with independent readers (ffprobe, od).
# Exit codes: 0 pass, 1 fail, 77 skip (meson's convention).
set -euo pipefail

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
skip() {
  echo "SKIP: $*"
  exit 77
}
need_program() { command -v "$1" > /dev/null || skip "$1 is not installed"; }

# A private scratch folder per test, removed on exit.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ds-ffmpeg-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# make_model DIR [SEED]: a random 64x64, 16-frame, 8 fps model that generates fast.
make_model() {
  "${DS_MAKE_RANDOM_MODEL:?}" "$1" "${2:-1}" 64 64 16 > /dev/null || fail "make_random_model $1"
}

# probe FILE: "codec,width,height,rate,frames", frames counted by decoding the whole file.
probe() {
  ffprobe -v error -select_streams v:0 -count_frames \
    -show_entries stream=codec_name,width,height,avg_frame_rate,nb_read_frames -of csv=p=0 "$1"
}

expect_eq() {  # WHAT EXPECTED ACTUAL
  [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}

# run_checked LOG CMD...: runs CMD with stderr to LOG; fails on a crash (signal), returns its status.
run_checked() {
  local log=$1 status=0
  shift
  "$@" 2> "$log" || status=$?
  if [ "$status" -ge 128 ]; then
    cat "$log" >&2
    fail "'$1' crashed (status $status)"
  fi
  return "$status"
}

# pixel RAW_RGBA WIDTH X Y: "R G B A" of pixel (X, Y) of the first frame of a raw RGBA file.
pixel() {
  od -A n -t u1 -j $((($4 * $2 + $3) * 4)) -N 4 "$1" | tr -s ' ' | sed 's/^ //; s/ $//'
}

# framemd5 FILE: the per-frame hashes of a video (timestamps and all), from FFmpeg's framemd5 muxer.
framemd5() {
  ffmpeg -nostdin -v error -i "$1" -f framemd5 - | grep -v '^#'
}
