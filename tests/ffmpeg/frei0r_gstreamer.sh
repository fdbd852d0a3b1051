#!/usr/bin/env bash
# The frei0r plugin under GStreamer's frei0r wrapper (gst-plugins-bad), as element
# frei0r-src-ditstream: a gst-launch pipeline to MP4 checked by ffprobe, the options property for
# numbers (the wrapper limits DOUBLE properties to [0, 1]), an error case, and property changes
# while playing (gst_frei0r_live). Hermetic: a private registry, FREI0R_PATH = the plugin's folder.
source "$(dirname "$0")/lib.sh"
need_program gst-launch-1.0
need_program gst-inspect-1.0
need_program ffprobe
export FREI0R_PATH=${DS_FREI0R_DIR:?} GST_REGISTRY=$TMP/registry.bin
unset GST_PLUGIN_PATH GST_PLUGIN_PATH_1_0
gst-inspect-1.0 frei0r > /dev/null 2>&1 || skip "GStreamer's frei0r plugin (gstreamer1.0-plugins-bad) is missing"
gst-inspect-1.0 frei0r-src-ditstream > "$TMP/inspect" 2>&1 || fail "no element frei0r-src-ditstream: $(cat "$TMP/inspect")"
grep -q 'prompt-file' "$TMP/inspect" || fail "gst-inspect shows no prompt-file property"

model=$TMP/model
make_model "$model"

# A prompt with : , | and ' needs no escaping here.
run_checked "$TMP/launch.err" gst-launch-1.0 -q frei0r-src-ditstream model="$model" \
  "prompt=it's 16:9, a|b" options="seed=3&steps=2" num-buffers=20 \
  ! video/x-raw,width=64,height=64,framerate=8/1 ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc ! mp4mux ! filesink location="$TMP/out.mp4" || fail "gst-launch: $(cat "$TMP/launch.err")"
expect_eq "MP4 stream" "h264,64,64,8/1,20" "$(probe "$TMP/out.mp4")"
grep -q "ditstream frei0r: \(error\|warning\)" "$TMP/launch.err" && fail "unexpected message: $(cat "$TMP/launch.err")"

# An unsupported width: the pipeline still runs, with one error line and marked frames.
run_checked "$TMP/bad.err" gst-launch-1.0 -q frei0r-src-ditstream model="$model" num-buffers=3 \
  ! video/x-raw,width=40,height=64,framerate=8/1 ! fakesink || fail "gst-launch with width 40: $(cat "$TMP/bad.err")"
expect_eq "error lines for width 40" 1 "$(grep -c 'ditstream frei0r: error: frame width 40' "$TMP/bad.err" || true)"

if [ -n "${DS_GST_FREI0R_LIVE:-}" ]; then
  run_checked "$TMP/live.err" "$DS_GST_FREI0R_LIVE" "$model" || fail "gst_frei0r_live: $(cat "$TMP/live.err")"
  grep -q "warning: an empty prompt was ignored" "$TMP/live.err" ||
    fail "the live empty prompt did not arrive intact: $(cat "$TMP/live.err")"
  grep -q "ditstream frei0r: error\|warning: options" "$TMP/live.err" && fail "live changes garbled: $(cat "$TMP/live.err")"
fi
echo "frei0r_gstreamer: ok"
