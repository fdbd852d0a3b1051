#!/usr/bin/env bash
# build_native.sh PATCH OUT WORKDIR LIBDIR INCLUDEDIR
#
# Builds a minimal FFmpeg 5.1.x with the native `ditstream` source filter and copies its ffmpeg
# binary to OUT. Run by meson (-Dffmpeg_native=true); also usable by hand.
#   PATCH       the complete patch (make_patch.sh output)
#   WORKDIR     scratch folder: downloaded source, private apt state, the FFmpeg tree, build.log
#   LIBDIR      folder of libditstream.so (linked, and put in the binary's RPATH)
#   INCLUDEDIR  folder of ditstream.h
#
# The source is the distribution's: Debian 12's ffmpeg source package (5.1.x), fetched with
# `apt-get source --download-only` through a private sources list (deb-src lines for bookworm) and
# private apt state under WORKDIR, so the system's apt configuration is neither needed nor touched.
# Only the upstream tarball (ffmpeg_5.1.*.orig.tar.xz) is used, not Debian's patches. Offline, point
# DS_FFMPEG_TARBALL at such a tarball.
#
# Cached: nothing is rebuilt when OUT exists and was built from the same patch, script and flags.
# CPU use stays low (make -j2, nice).
set -euo pipefail

if [ $# -ne 5 ]; then
  echo "usage: $0 PATCH OUT WORKDIR LIBDIR INCLUDEDIR" >&2
  exit 2
fi
patch_file=$(realpath "$1") out=$(realpath -m "$2") work=$(realpath -m "$3") libdir=$(realpath "$4") includedir=$(realpath "$5")
mkdir -p "$work"
log=$work/build.log

say() { echo "build_native: $*"; }
die() {
  echo "build_native: $*" >&2
  [ -f "$log" ] && { echo "---- last lines of $log ----" >&2; tail -n 30 "$log" >&2; }
  exit 1
}

# Encoders: libx264 when its headers are installed (then FFmpeg must be GPL), mpeg4 always, so that
# MP4 output works either way.
encoders=rawvideo,wrapped_avframe,mpeg4
extra=()
if pkg-config --exists x264; then
  encoders+=,libx264
  extra+=(--enable-gpl --enable-libx264)
fi
configure_flags=(
  --disable-everything --disable-autodetect --disable-doc --disable-debug --disable-x86asm
  --disable-ffplay --disable-ffprobe
  --enable-indev=lavfi
  --enable-filter=ditstream,format,scale,null,sendcmd,trim,setpts
  --enable-encoder="$encoders"
  --enable-decoder=rawvideo,wrapped_avframe
  --enable-muxer=mp4,framemd5,rawvideo,null
  --enable-protocol=file,pipe
  --enable-libditstream "${extra[@]}"
  --extra-ldflags="-Wl,-rpath,$libdir"
)

stamp_text() {
  sha256sum "$patch_file" "$0" | cut -d' ' -f1
  printf '%s\n' "${configure_flags[@]}"
}
stamp=$work/stamp
if [ -x "$out" ] && [ -f "$stamp" ] && [ "$(stamp_text)" = "$(cat "$stamp")" ]; then
  say "up to date: $out"
  touch "$out"
  exit 0
fi

fetch_tarball() {
  local dl=$work/download apt=$work/apt
  local found
  found=$(find "$dl" -maxdepth 1 -name 'ffmpeg_5.1*.orig.tar.xz' 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$found" ]; then
    echo "$found"
    return
  fi
  mkdir -p "$dl" "$apt/lists/partial" "$apt/cache/archives/partial"
  cat > "$apt/sources.list" <<'EOF'
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
deb-src http://deb.debian.org/debian-security bookworm-security main
EOF
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -q)
  say "fetching the ffmpeg source package (apt-get source --download-only)" >&2
  apt-get "${opts[@]}" update >> "$log" 2>&1 || die "apt-get update with deb-src for bookworm failed"
  (cd "$dl" && apt-get "${opts[@]}" source --download-only ffmpeg) >> "$log" 2>&1 ||
    die "apt-get source --download-only ffmpeg failed"
  found=$(find "$dl" -maxdepth 1 -name 'ffmpeg_5.1*.orig.tar.xz' | sort -V | tail -n 1)
  [ -n "$found" ] || die "the ffmpeg source package has no ffmpeg_5.1*.orig.tar.xz (not FFmpeg 5.1?)"
  echo "$found"
}

: > "$log"
tarball=${DS_FFMPEG_TARBALL:-$(fetch_tarball)}
[ -f "$tarball" ] || die "no FFmpeg source tarball: $tarball"

src=$work/src
say "unpacking $(basename "$tarball") and applying $(basename "$patch_file")"
rm -rf "$src"
mkdir -p "$src"
tar -xf "$tarball" -C "$src" --strip-components=1
(cd "$src" && patch -p1 --batch --forward < "$patch_file") >> "$log" 2>&1 || die "the patch does not apply"

# A private .pc naming only our header and library: the meson-uninstalled one also puts the source
# and build roots on the include path, where they could shadow FFmpeg's own headers.
mkdir -p "$work/pkgconfig"
cat > "$work/pkgconfig/ditstream.pc" <<EOF
Name: ditstream
Description: Generative video streamed into media pipelines
Version: 0
Cflags: -I$includedir
Libs: -L$libdir -lditstream
EOF

say "configuring a minimal FFmpeg (log: $log)"
(cd "$src" && PKG_CONFIG_PATH=$work/pkgconfig ./configure "${configure_flags[@]}") >> "$log" 2>&1 ||
  die "configure failed"
grep -q '^CONFIG_DITSTREAM_FILTER=yes' "$src/ffbuild/config.mak" || die "configure did not enable the ditstream filter"

say "building ffmpeg (make -j2)"
(cd "$src" && nice make -j2 ffmpeg) >> "$log" 2>&1 || die "make failed"
cp "$src/ffmpeg" "$out.tmp"
mv "$out.tmp" "$out"
stamp_text > "$stamp"
say "built $out"
