#!/usr/bin/env bash
# The native source is deterministic: framemd5 of the same seed twice is identical (two clips, so
# the continuation is covered too), another seed differs.
source "$(dirname "$0")/lib.sh"
ffmpeg_native=${DS_FFMPEG_NATIVE:?}

model=$TMP/model
make_model "$model"

hashes() {  # NAME SEED
  "$ffmpeg_native" -nostdin -v error -f lavfi -i "ditstream=model=$model:prompt=a red circle moving right:seed=$2:clips=2" \
    -f framemd5 - 2> "$TMP/$1.err" | grep -v '^#' > "$TMP/$1" || fail "native ffmpeg: $(cat "$TMP/$1.err")"
  [ -s "$TMP/$1" ] || fail "no frames for $1"
}
hashes a 7
hashes b 7
hashes c 8
cmp -s "$TMP/a" "$TMP/b" || fail "the same seed gave different frames"
cmp -s "$TMP/a" "$TMP/c" && fail "seeds 7 and 8 gave the same frames"
echo "native_determinism: ok ($(wc -l < "$TMP/a") frames)"
