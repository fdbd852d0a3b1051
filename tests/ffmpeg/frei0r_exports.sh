#!/usr/bin/env bash
# How ditstream.so is linked, since hosts hide dlopen failures ("Could not find module"): it loads on
# its own (no undefined symbols; libditstream found through its RPATH, also from a copy elsewhere),
# exports exactly the nine frei0r entry points, and is marked NODELETE (FFmpeg's -filter_complex
# path unloads and reloads it).
source "$(dirname "$0")/lib.sh"
need_program nm
need_program readelf
need_program python3
plugin=${DS_FREI0R_DIR:?}/ditstream.so
[ -f "$plugin" ] || fail "no plugin at $plugin"

mkdir "$TMP/copy"
cp "$plugin" "$TMP/copy/"
for p in "$plugin" "$TMP/copy/ditstream.so"; do
  python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)' "$p" ||
    fail "dlopen of $p failed"
done

exports=$(nm -D --defined-only "$plugin" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort | tr '\n' ' ')
expect_eq "exported symbols" \
  "f0r_construct f0r_deinit f0r_destruct f0r_get_param_info f0r_get_param_value f0r_get_plugin_info f0r_init f0r_set_param_value f0r_update " \
  "$exports"
readelf -d "$plugin" | grep -q 'Flags:.*NODELETE' || fail "ditstream.so is not linked with -z nodelete"

# filter_params is positional, so the parameter order is an interface: it must stay as documented in
# plugin/ffmpeg/README.md (options the table gains after 'threads' are appended after 'options';
# one inserted before 'threads' would move the ones after it: update both).
params=$(python3 - "$plugin" <<'PY'
import ctypes, sys
class Info(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int), ("explanation", ctypes.c_char_p)]
lib = ctypes.CDLL(sys.argv[1])
class PluginInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("author", ctypes.c_char_p), ("plugin_type", ctypes.c_int),
                ("color_model", ctypes.c_int), ("frei0r_version", ctypes.c_int), ("major_version", ctypes.c_int),
                ("minor_version", ctypes.c_int), ("num_params", ctypes.c_int), ("explanation", ctypes.c_char_p)]
plugin = PluginInfo()
lib.f0r_get_plugin_info(ctypes.byref(plugin))
out = []
for i in range(plugin.num_params):
    info = Info()
    lib.f0r_get_param_info(ctypes.byref(info), i)
    assert info.explanation, info.name
    out.append("%s:%s" % (info.name.decode(), {1: "double", 4: "string"}[info.type]))
print(" ".join(out))
PY
)
expect_eq "frei0r parameters in order" \
  "model:string prompt:string negative-prompt:string frames:double steps:double guidance:double shift:double seed:double device:string threads:double prompt-file:string options:string vae-tiling:string sampler:string lora:string cache-threshold:double guidance-2:double lora-2:string" \
  "$params"
echo "frei0r_exports: ok"
