#!/usr/bin/env bash
# The native `ditstream` source hands YUV420P (its default format) or NV12 straight from the engine:
# the frames are limited-range BT.601 (auto at 64x64, or matrix=bt601) or BT.709 (matrix=bt709)
# computed from the same clip's RGB24 frames within one level (i420_matches_rgb.py, floating point),
# and an H.264 encode carries the matching colour tags. swscale converting RGB instead would use
# BT.601 for both, and fail the BT.709 check.
source "$(dirname "$0")/lib.sh"
need_program ffprobe
need_program python3
ffmpeg_native=${DS_FFMPEG_NATIVE:?}
check=$(dirname "$0")/i420_matches_rgb.py

model=$TMP/model
make_model "$model"
clip="model=$model:prompt='a red circle moving right':frames=4:steps=2:seed=5"

# raw OUT PIX_FMT FILTER_ARGS: the lavfi graph "ditstream=FILTER_ARGS,format=PIX_FMT" (so the source
# itself makes PIX_FMT), written as raw frames.
raw() {
  "$ffmpeg_native" -nostdin -v error -y -f lavfi -i "ditstream=$3,format=$2" -f rawvideo -pix_fmt "$2" "$TMP/$1" \
    2> "$TMP/$1.err" || fail "native ffmpeg -pix_fmt $2 with ditstream=$3: $(cat "$TMP/$1.err")"
}
raw rgb.raw rgb24 "$clip"
raw auto.raw yuv420p "$clip"
raw bt601.raw yuv420p "$clip:matrix=bt601"
raw bt709.raw yuv420p "$clip:matrix=bt709"
raw nv12.raw nv12 "$clip:matrix=bt709"
# Without a format in the graph the source picks YUV420P itself: the same bytes.
"$ffmpeg_native" -nostdin -v error -y -f lavfi -i "ditstream=$clip" -f rawvideo -pix_fmt yuv420p "$TMP/default.raw" \
  2> "$TMP/default.err" || fail "native ffmpeg with ditstream=$clip: $(cat "$TMP/default.err")"
cmp -s "$TMP/auto.raw" "$TMP/default.raw" || fail "the default output is not the engine's YUV420P"

python3 "$check" "$TMP/rgb.raw" "$TMP/auto.raw" 64 64 0.299 0.114 || fail "matrix=auto at 64x64 is not BT.601"
python3 "$check" "$TMP/rgb.raw" "$TMP/bt601.raw" 64 64 0.299 0.114 || fail "matrix=bt601 is not BT.601"
python3 "$check" "$TMP/rgb.raw" "$TMP/bt709.raw" 64 64 0.2126 0.0722 || fail "matrix=bt709 is not BT.709"
python3 "$check" "$TMP/rgb.raw" "$TMP/nv12.raw" 64 64 0.2126 0.0722 nv12 || fail "NV12 with matrix=bt709 is not BT.709"
cmp -s "$TMP/bt601.raw" "$TMP/bt709.raw" && fail "BT.601 and BT.709 frames are identical"

if "$ffmpeg_native" -hide_banner -encoders 2> /dev/null | grep -q libx264; then
  for matrix in bt601 bt709; do
    # No -pix_fmt: the encoder gets the source's own format, 4:2:0 (not 4:4:4, which few players
    # decode). -filter_complex, not -f lavfi -i: FFmpeg 5.1's lavfi device drops the frames' colour
    # tags (it repacks them as raw packets).
    "$ffmpeg_native" -nostdin -v error -y -filter_complex "ditstream=$clip:matrix=$matrix" -c:v libx264 \
      "$TMP/$matrix.mp4" 2> "$TMP/$matrix.err" || fail "libx264 with matrix=$matrix: $(cat "$TMP/$matrix.err")"
    tags=$(ffprobe -v error -select_streams v:0 \
      -show_entries stream=pix_fmt,color_range,color_space,color_transfer,color_primaries,chroma_location \
      -of csv=p=0 "$TMP/$matrix.mp4")
    space=$([ $matrix = bt709 ] && echo bt709 || echo smpte170m)
    expect_eq "H.264 tags for matrix=$matrix" "yuv420p,tv,$space,$space,$space,center" "$tags"
  done
fi
echo "native_yuv: ok"
