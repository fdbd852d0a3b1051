#!/usr/bin/env bash
# The native `ditstream` source in the patched minimal ffmpeg: the README's command writes an MP4 that
# ends on its own after one clip (no -frames:v), with the model's size and rate or the given ones;
# clips=2 continues the first clip; `ffmpeg -h filter=ditstream` shows every option of the table.
source "$(dirname "$0")/lib.sh"
need_program ffprobe
need_program python3
ffmpeg_native=${DS_FFMPEG_NATIVE:?}

model=$TMP/model
make_model "$model"

# native OUT FILTER_ARGS: the native ffmpeg, -f lavfi, to MP4 (libx264 when built in, else mpeg4).
codec=mpeg4
"$ffmpeg_native" -hide_banner -encoders 2> /dev/null | grep -q libx264 && codec=libx264
native() {
  "$ffmpeg_native" -nostdin -v error -y -f lavfi -i "ditstream=$2" -c:v "$codec" -pix_fmt yuv420p "$TMP/$1" \
    2> "$TMP/$1.err" || fail "native ffmpeg with ditstream=$2: $(cat "$TMP/$1.err")"
}
expected_codec=$([ "$codec" = libx264 ] && echo h264 || echo mpeg4)

native out.mp4 "model=$model:prompt='a blue square moving up':frames=16"
expect_eq "one clip" "$expected_codec,64,64,8/1,16" "$(probe "$TMP/out.mp4")"

native sized.mp4 "model=$model:size=32x48:rate=10:frames=8"
expect_eq "size and rate" "$expected_codec,32,48,10/1,8" "$(probe "$TMP/sized.mp4")"

# A continued clip adds frames - continuation_prefix_frames new frames (the model's config).
prefix=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sampling"]["continuation_prefix_frames"])' \
  "$model/config.json")
native clips.mp4 "model=$model:frames=16:clips=2"
expect_eq "two clips" "$expected_codec,64,64,8/1,$((16 + 16 - prefix))" "$(probe "$TMP/clips.mp4")"

"$ffmpeg_native" -hide_banner -h filter=ditstream > "$TMP/help" 2>&1 || fail "ffmpeg -h filter=ditstream"
# threads: libavfilter's generic option of every filter, which the filter reads (native_errors)
for option in model prompt negative_prompt size rate frames steps guidance shift seed device vae_tiling clips matrix; do
  grep -q "^   $option " "$TMP/help" || fail "option $option missing from: $(cat "$TMP/help")"
done
echo "native_ffmpeg: ok"
