#!/usr/bin/env bash
# The frei0r plugin in the distribution's ffmpeg: MP4 output with the right frame count, size and
# rate; free text through prompt-file; the -filter_complex path (which loads, unloads and reloads the
# plugin); a clip sequence that continues without repeated frames.
source "$(dirname "$0")/lib.sh"
need_program ffmpeg
need_program ffprobe
export FREI0R_PATH=${DS_FREI0R_DIR:?}

model=$TMP/model
make_model "$model"

# The README's command line, with the random model.
ffmpeg -nostdin -v error -y -f lavfi \
  -i "frei0r_src=size=64x64:framerate=8:filter_name=ditstream:filter_params=$model|a blue square moving up" \
  -frames:v 32 -pix_fmt yuv420p "$TMP/out.mp4" 2> "$TMP/err" || { cat "$TMP/err" >&2; fail "ffmpeg frei0r_src"; }
expect_eq "MP4 stream" "h264,64,64,8/1,32" "$(probe "$TMP/out.mp4")"
grep -q "ditstream frei0r: error" "$TMP/err" && fail "unexpected error: $(cat "$TMP/err")"

# A prompt with every character that filter_params makes hard (: , | ' and UTF-8), via prompt-file.
printf "it's 16:9, a|b — café\n" > "$TMP/prompt.txt"
ffmpeg -nostdin -v error -y -filter_complex \
  "frei0r_src=size=64x64:framerate=8:filter_name=ditstream:filter_params=$model|||||||||||prompt-file=$TMP/prompt.txt[v]" \
  -map "[v]" -frames:v 20 -pix_fmt yuv420p "$TMP/complex.mp4" 2> "$TMP/err" ||
  { cat "$TMP/err" >&2; fail "ffmpeg -filter_complex frei0r_src with prompt-file"; }
expect_eq "-filter_complex MP4 stream" "h264,64,64,8/1,20" "$(probe "$TMP/complex.mp4")"
grep -q "ditstream frei0r: error" "$TMP/err" && fail "unexpected error: $(cat "$TMP/err")"

# Continued clips: 40 frames span three clips; no frame is repeated at a clip boundary.
ffmpeg -nostdin -v error -f lavfi -i "frei0r_src=size=64x64:framerate=8:filter_name=ditstream:filter_params=$model" \
  -frames:v 40 -f framemd5 - 2> "$TMP/err" | grep -v '^#' | awk -F', *' '{print $6}' > "$TMP/hashes" ||
  { cat "$TMP/err" >&2; fail "ffmpeg framemd5"; }
expect_eq "frames hashed" 40 "$(wc -l < "$TMP/hashes")"
repeats=$(uniq -d < "$TMP/hashes" | wc -l)
expect_eq "consecutive identical frames" 0 "$repeats"
echo "frei0r_ffmpeg: ok"
