#!/usr/bin/env bash
# Sets up a Debian 12 machine for ditstream and builds it into ./build (or $BUILD_DIR):
# installs the Debian packages that are missing (needs root or sudo), configures meson once and
# compiles. Safe to run again: it only does what is not done yet.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
PACKAGES=(
  g++ make patch xz-utils meson ninja-build pkg-config
  libfmt-dev libgtest-dev libgmock-dev libopenblas-dev libcli11-dev nlohmann-json3-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libx264-dev ffmpeg
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad
  frei0r-plugins-dev libsentencepiece-dev valgrind clang libclang-rt-14-dev libomp-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  meson setup "$BUILD_DIR" --buildtype=release ${MESON_ARGS:-}
fi
ninja -C "$BUILD_DIR"
