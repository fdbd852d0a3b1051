#!/usr/bin/env bash
# The frei0r plugin is deterministic: the same seed gives the same frames (framemd5 of the raw RGBA
# output, 24 frames = two clips), another seed or prompt gives others, and a prompt read from
# prompt-file gives exactly what the same prompt given as a parameter gives.
source "$(dirname "$0")/lib.sh"
need_program ffmpeg
export FREI0R_PATH=${DS_FREI0R_DIR:?}

model=$TMP/model
make_model "$model"

# hashes NAME FILTER_PARAMS: framemd5 lines (pts and hash) of 24 frames.
hashes() {
  ffmpeg -nostdin -v error -f lavfi \
    -i "frei0r_src=size=64x64:framerate=8:filter_name=ditstream:filter_params=$2" \
    -frames:v 24 -f framemd5 - 2> "$TMP/$1.err" | grep -v '^#' > "$TMP/$1" ||
    { cat "$TMP/$1.err" >&2; fail "ffmpeg for $1"; }
  expect_eq "frames hashed for $1" 24 "$(wc -l < "$TMP/$1")"
}

# Parameter order: model|prompt|negative-prompt|frames|steps|guidance|shift|seed|... (README).
hashes seed7a "$model|a blue square moving up||||||7"
hashes seed7b "$model|a blue square moving up||||||7"
hashes seed8 "$model|a blue square moving up||||||8"
hashes other_prompt "$model|a green circle moving left||||||7"
echo "a blue square moving up" > "$TMP/prompt.txt"
hashes from_file "$model|||||||7||||prompt-file=$TMP/prompt.txt"

cmp -s "$TMP/seed7a" "$TMP/seed7b" || fail "the same seed gave different frames"
cmp -s "$TMP/seed7a" "$TMP/seed8" && fail "seeds 7 and 8 gave the same frames"
cmp -s "$TMP/seed7a" "$TMP/other_prompt" && fail "two prompts gave the same frames"
cmp -s "$TMP/seed7a" "$TMP/from_file" || fail "prompt-file differs from the same prompt as a parameter"
echo "frei0r_determinism: ok"
