#!/usr/bin/env bash
# sendcmd changes the prompt of the native source between clips: with clips=2, a command during the
# first clip leaves it unchanged and changes the second one, compared with a run without the command.
source "$(dirname "$0")/lib.sh"
ffmpeg_native=${DS_FFMPEG_NATIVE:?}

model=$TMP/model
make_model "$model"
# sendcmd's own syntax quotes the argument; a file keeps the filtergraph's escaping out of it.
echo "1.0 ditstream prompt 'a green circle moving left';" > "$TMP/commands.txt"

hashes() {  # NAME EXTRA_FILTERS
  "$ffmpeg_native" -nostdin -v error -f lavfi \
    -i "ditstream=model=$model:prompt=a blue square moving up:frames=16:clips=2$2" \
    -f framemd5 - 2> "$TMP/$1.err" | grep -v '^#' | awk -F', *' '{print $6}' > "$TMP/$1" ||
    fail "native ffmpeg: $(cat "$TMP/$1.err")"
  [ "$(wc -l < "$TMP/$1")" -gt 16 ] || fail "$1: fewer than two clips: $(cat "$TMP/$1.err")"
}
hashes plain ""
hashes command ",sendcmd=f=$TMP/commands.txt"

head -n 16 "$TMP/plain" > "$TMP/plain1"
head -n 16 "$TMP/command" > "$TMP/command1"
cmp -s "$TMP/plain1" "$TMP/command1" || fail "the first clip changed"
cmp -s "$TMP/plain" "$TMP/command" && fail "the command did not change the second clip"

# A command the engine refuses is refused when it arrives: the option keeps its value and the
# stream goes on, every frame as without the command.
echo "0.5 ditstream shift 0; 0.6 ditstream prompt '';" > "$TMP/bad.txt"
hashes refused ",sendcmd=f=$TMP/bad.txt"
cmp -s "$TMP/plain" "$TMP/refused" || fail "a refused command changed or cut the stream: $(cat "$TMP/refused.err")"
grep -q "Command shift refused" "$TMP/refused.err" || fail "no refusal logged: $(cat "$TMP/refused.err")"
grep -q "Command prompt refused" "$TMP/refused.err" || fail "no refusal logged: $(cat "$TMP/refused.err")"
echo "native_sendcmd: ok"
